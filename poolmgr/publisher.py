"""The worker's side of one execution in Redis: status, output frames, final result."""

from __future__ import annotations

import logging
import time
from typing import Literal

from redis.asyncio import Redis

from poolmgr import metrics
from poolmgr.redis_retry import until_redis
from runtimes import keys, wire
from runtimes.lifecycle import Status, check_transition
from runtimes.transitions import OK, Transitions

log = logging.getLogger(__name__)


class ExecutionPublisher:
    """Writes an execution's state and frames: hash + replay log + pub/sub.

    Each frame is appended to the replay log before it is published, in one round trip, so
    a watcher that subscribes and then reads the log misses nothing. Status writes go
    through the transition scripts: if someone else ended the execution first (an abort
    while it was queued, a recovering worker), `set_status` and `finish` return False.
    """

    def __init__(self, redis: Redis, transitions: Transitions, job: wire.Job, ttl_s: int) -> None:
        self._redis = redis
        self._transitions = transitions
        self._job = job
        self._ttl = ttl_s
        self._log = keys.output_log(job.execution_id)
        self._channel = keys.events(job.execution_id)
        self.status = Status.QUEUED
        self.seq = 0
        self._since = time.monotonic()

    def _record(self, new: Status, failure_code: str | None = None) -> None:
        """One structured log line per state change."""
        now = time.monotonic()
        log.info(
            "execution=%s language=%s status=%s previous=%s duration_ms=%.1f failure_code=%s",
            self._job.execution_id,
            self._job.language,
            new,
            self.status,
            (now - self._since) * 1e3,
            failure_code,
        )
        self.status, self._since = new, now

    async def set_status(self, *statuses: Status) -> bool:
        """Move through `statuses` in order (skipping the current one), in one round trip."""
        todo = [s for s in statuses if s is not self.status]
        previous = self.status
        for status in todo:
            check_transition(previous, status)
            previous = status
        reply = await until_redis(
            lambda: self._transitions.advance(self._job, todo), "setting a status"
        )
        if reply != OK:
            log.info(
                "execution=%s already %s: not moving to %s", self._job.execution_id, reply, todo
            )
            return False
        for status in todo:
            self._record(status)
        return True

    async def output(self, stream: Literal["stdout", "stderr"], data: str) -> None:
        raw = wire.encode(wire.OutputEvent(type=stream, data=data, seq=self.seq))

        async def append() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.rpush(self._log, raw)
                pipe.expire(self._log, self._ttl)
                pipe.publish(self._channel, raw)
                await pipe.execute()

        await until_redis(append, "appending output")
        self.seq += 1

    async def finish(self, result: wire.Result) -> bool:
        """Record the terminal result, unless another party ended the execution first."""
        check_transition(self.status, result.status)
        reply = await until_redis(
            lambda: self._transitions.finish(self._job.attempt, result, self._ttl),
            "recording a result",
        )
        if reply != OK:
            log.info("execution=%s already %s: result dropped", self._job.execution_id, reply)
            return False
        self._record(result.status, result.failure_code)
        metrics.count_end(result)
        return True
