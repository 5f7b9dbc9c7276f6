"""The worker's side of one execution in Redis: status, output frames, final result."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Literal

import anyio
from redis.asyncio import Redis

from poolmgr import metrics
from poolmgr.redis_retry import until_redis
from runtimes import wire
from runtimes.lifecycle import Status, check_transition
from runtimes.transitions import OK, STALE, Transitions

log = logging.getLogger(__name__)

Stream = Literal["stdout", "stderr"]
FRAME_CHARS = 16 * 1024  # one frame's text at most: a flood becomes few, bounded frames
FLUSH_EVERY_S = 0.004  # after a write, the next waits this long so small writes coalesce


class Superseded(RuntimeError):
    """This attempt may no longer write: the execution ended or was handed to another worker."""


class ExecutionPublisher:
    """Writes an execution's state and frames: hash + replay log + pub/sub.

    Output is buffered and written by `pump`, so the program's output loop never waits for
    Redis (a Redis outage does not eat the program's time limit): the first chunk goes out
    at once, later ones coalesce while a write is in flight or for a few milliseconds,
    consecutive chunks of one stream become one frame, and a stream switch starts a new
    frame, so the order of stdout and stderr is kept. Every write goes through the
    transition scripts, fenced by attempt and owner, so a worker cut off from Redis whose
    job was re-run elsewhere cannot mix its frames with the re-run's.
    """

    def __init__(
        self, redis: Redis, transitions: Transitions, job: wire.Job, owner: str, ttl_s: int
    ) -> None:
        self._redis = redis
        self._transitions = transitions
        self._job = job
        self.owner = owner
        self._ttl = ttl_s
        self.status = Status.QUEUED
        self.seq = 0
        self._since = time.monotonic()
        self._buffer: list[tuple[Stream, list[str]]] = []
        self._unconfirmed: list[bytes] = []  # frames seq, seq + 1, ... sent but not confirmed
        self._ready = anyio.Event()
        self._writing = anyio.Lock()

    def _record(
        self, new: Status, failure_code: str | None = None, start: str | None = None
    ) -> None:
        """One structured log line per state change; `start` (warm/cold) once it is known."""
        now = time.monotonic()
        duration_ms = round((now - self._since) * 1e3, 1)
        fields = {
            "execution_id": self._job.execution_id,
            "user": self._job.user,
            "language": self._job.language,
            "status": str(new),
            "previous": str(self.status),
            "start": start,
            "duration_ms": duration_ms,
            "failure_code": failure_code,
        }
        log.info(
            "execution=%s language=%s status=%s previous=%s duration_ms=%.1f failure_code=%s",
            self._job.execution_id,
            self._job.language,
            new,
            self.status,
            duration_ms,
            failure_code,
            extra={"fields": fields},
        )
        self.status, self._since = new, now

    async def set_status(self, *statuses: Status) -> bool:
        """Move through `statuses` in order (skipping the current one), in one round trip;
        False if the execution had ended or another entry of it runs, `Superseded` if this
        attempt was handed to another worker."""
        todo = [s for s in statuses if s is not self.status]
        previous = self.status
        for status in todo:
            check_transition(previous, status)
            previous = status
        reply = await until_redis(
            lambda: self._transitions.advance(self._job, self.owner, todo), "setting a status"
        )
        _raise_if_superseded(reply)
        if reply != OK:
            log.info(
                "execution=%s already %s: not moving to %s", self._job.execution_id, reply, todo
            )
            return False
        for status in todo:
            self._record(status)
        return True

    def output(self, stream: Stream, data: str) -> None:
        """Queue output for `pump`; never waits."""
        if self._buffer and self._buffer[-1][0] == stream:
            self._buffer[-1][1].append(data)
        else:
            self._buffer.append((stream, [data]))
        self._ready.set()

    async def pump(self, on_refused: Callable[[], None]) -> None:
        """Write queued output until cancelled; `on_refused` stops the run if it is superseded."""
        while True:
            await self._ready.wait()
            try:
                await self.flush()
            except Superseded as exc:
                log.warning("execution=%s %s: stopping its run", self._job.execution_id, exc)
                on_refused()
                return
            await anyio.sleep(FLUSH_EVERY_S)

    async def flush(self) -> None:
        """Write everything queued so far, in order; `Superseded` if the writes are refused.

        Frames stay unconfirmed until their append succeeds: a flush cancelled mid-write (the
        run ending) leaves them to the next flush, which sends them again with the same `seq`
        numbers; the append script skips those that had landed.
        """
        async with self._writing:
            while self._unconfirmed or self._buffer:
                if not self._unconfirmed:
                    self._ready = anyio.Event()
                    chunks, self._buffer = self._buffer, []
                    self._unconfirmed = [
                        wire.encode(wire.OutputEvent(type=stream, data=piece, seq=self.seq + i))
                        for i, (stream, piece) in enumerate(_pieces(chunks))
                    ]
                frames = self._unconfirmed
                if not frames:
                    continue
                append = partial(
                    self._transitions.append, self._job, self.owner, self.seq, frames, self._ttl
                )
                reply = await until_redis(append, "appending output")
                if reply != OK:
                    raise Superseded(f"output refused: {reply}")
                self.seq += len(frames)
                self._unconfirmed = []

    async def finish(self, result: wire.Result) -> bool:
        """Record the terminal result, unless another party ended the execution first;
        `Superseded` if this attempt was handed to another worker meanwhile: its entry is
        theirs to settle then, and acking it here could lose their re-run."""
        check_transition(self.status, result.status)
        reply = await until_redis(
            lambda: self._transitions.finish(self._job.attempt, self.owner, result, self._ttl),
            "recording a result",
        )
        _raise_if_superseded(reply)
        if reply != OK:
            log.info("execution=%s already %s: result dropped", self._job.execution_id, reply)
            return False
        self._record(result.status, result.failure_code, result.start)
        metrics.count_end(result)
        return True


def _raise_if_superseded(reply: str) -> None:
    if reply == STALE:
        raise Superseded(f"this attempt is {reply}: another worker has the job")


def _pieces(chunks: list[tuple[Stream, list[str]]]) -> list[tuple[Stream, str]]:
    """Runs of one stream joined, then cut to at most FRAME_CHARS characters each."""
    pieces: list[tuple[Stream, str]] = []
    for stream, parts in chunks:
        text = "".join(parts)
        pieces += [(stream, text[i : i + FRAME_CHARS]) for i in range(0, len(text), FRAME_CHARS)]
    return pieces
