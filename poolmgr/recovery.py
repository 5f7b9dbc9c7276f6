"""Every accepted job ends exactly once: retries for infrastructure failures, the jobs of
workers that died mid-execution (their heartbeat expired) taken over and settled, and a
sweeper that ends any execution whose job is in no stream, so that "every accepted
execution ends" holds by construction, whatever message was lost on the way; the sweeper
also ends any execution still queued `max_queue_s` after it was accepted (a language no
worker serves, or a backlog no worker keeps up with).
"""

from __future__ import annotations

import logging
import time
from typing import cast

from redis.asyncio import Redis

from poolmgr import heartbeat, metrics
from poolmgr.periodic import every
from poolmgr.queue import CLAIM_IDLE_MS, Entry, JobQueue, Pending
from poolmgr.redis_retry import until_redis
from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.registry import RUNTIMES
from runtimes.settings import Settings
from runtimes.transitions import ENDED_NOW, OK, ORPHAN, Transitions

log = logging.getLogger(__name__)

MAX_RETRIES = 2  # a job is tried at most three times
ORPHAN_IDLE_MS = 10_000
SWEEP_AFTER_S = 10.0  # executions younger than this are not looked at
SWEEP_BATCH = 500
ORPHANED = "orphaned"  # the failure code of an execution the sweeper ended
QUEUE_TIMEOUT = "queue_timeout"  # ... of one it ended because it stayed queued too long


class Recovery:
    def __init__(
        self,
        redis: Redis,
        queue: JobQueue,
        transitions: Transitions,
        languages: list[str],
        result_ttl_s: int,
        interval_s: float,
        in_flight: set[str],
        max_queue_s: float = Settings.max_queue_s,
    ) -> None:
        """`in_flight`: the entries (`Entry.ref`) this worker's consumer is handling now."""
        self._redis = redis
        self._queue = queue
        self._transitions = transitions
        self._languages = languages
        self._ttl = result_ttl_s
        self._interval = interval_s
        self._in_flight = in_flight
        self._sweep_from: dict[str, int] = {}  # per language
        self._max_queue_s = max_queue_s

    async def run(self) -> None:
        """The watchdog: every interval, settle the jobs of dead workers, then sweep."""
        await every(self._interval, "recovery", self.watch)

    async def watch(self) -> None:
        await self.recover()
        await self.sweep()
        for language in self._languages:
            for name in await self._queue.forget_dead_consumers(language):
                log.info("forgot dead consumer %s of %s", name, language)

    async def recover(self, own: bool = False) -> int:
        """Settle entries pending with dead consumers (and this worker's past life if `own`)."""
        settled = 0
        for language in self._languages:
            for stream, ids in (await self._orphans(language, own)).items():
                for entry in await self._queue.claim(stream, ids, 0 if own else CLAIM_IDLE_MS):
                    log.warning("execution=%s recovered from a dead worker", entry.job.execution_id)
                    await self.settle(entry, "worker_lost")
                    settled += 1
        return settled

    async def _orphans(self, language: str, own: bool) -> dict[str, list[str]]:
        """The language's pending entries that nothing handles, as stream -> entry ids."""
        me = self._queue.worker_id
        pending = await self._queue.pending(language)
        alive = await heartbeat.alive(self._redis, sorted({p.consumer for p in pending} - {me}))
        orphans: dict[str, list[str]] = {}
        for p in pending:
            if self._orphaned(p, alive, own):
                orphans.setdefault(p.stream, []).append(p.entry_id)
        return orphans

    def _orphaned(self, entry: Pending, alive: dict[str, bool], own: bool) -> bool:
        """A dead worker's entry; or one of ours that nothing here handles (our earlier life,
        or an entry whose delivery reply was lost to a dropped connection)."""
        if entry.consumer != self._queue.worker_id:
            return not alive[entry.consumer]
        lost = entry.ref not in self._in_flight and entry.idle_ms > ORPHAN_IDLE_MS
        return own or lost

    async def settle(self, entry: Entry, failure_code: str) -> None:
        """Re-run the job if nothing reached the user and tries remain; else end it as failed."""
        job = entry.job
        if job.attempt < MAX_RETRIES:
            reply = await until_redis(lambda: self._transitions.requeue(job), "re-queueing")
            if reply == OK:
                log.info(
                    "execution=%s retry %d (%s)", job.execution_id, job.attempt + 1, failure_code
                )
                await self._queue.retry(entry)
                return
            if reply != "has_output":  # ended, superseded, or expired: nothing left to do
                await self._queue.ack(entry)
                return
        else:
            failure_code = "retries_exhausted"
            await until_redis(
                lambda: self._queue.dead_letter(entry, failure_code), "dead-lettering"
            )
        token = f"{self._queue.worker_id}:{entry.entry_id}"
        await self._fail(job.execution_id, job.language, job.attempt, token, failure_code)
        await self._queue.ack(entry)

    async def sweep(self) -> int:
        """End every execution not terminal whose job is in no stream, and every one still
        queued `max_queue_s` after it was accepted (of every language in the registry: one
        no worker serves would wait forever, holding its user's slot); returns how many."""
        swept = 0
        for language in RUNTIMES:
            swept += await self._sweep(language)
        return swept

    async def _sweep(self, language: str) -> int:
        now = time.time()
        active = keys.active(language)
        ids = await self._redis.zrangebyscore(
            active,
            "-inf",
            now - min(SWEEP_AFTER_S, self._max_queue_s),
            self._sweep_from.get(language, 0),
            SWEEP_BATCH,
            withscores=True,
        )
        # A backlog of live executions older than an orphan must not hide it: the next pass
        # goes on from here, and starts over once it has seen them all.
        more = len(ids) == SWEEP_BATCH
        self._sweep_from[language] = self._sweep_from.get(language, 0) + len(ids) if more else 0
        swept = 0
        for raw, accepted_at in cast(list[tuple[bytes, float]], ids):
            execution_id = raw.decode()
            if not await self._redis.exists(keys.execution(execution_id)):
                await self._redis.zrem(active, execution_id)
                continue
            if accepted_at <= now - SWEEP_AFTER_S:
                verdict, attempt = await self._transitions.sweep(execution_id, language)
                if verdict == ORPHAN:
                    log.error("execution=%s has no job in any stream: ending it", execution_id)
                    token = f"{self._queue.worker_id}:sweep"
                    await self._fail(execution_id, language, attempt, token, ORPHANED)
                    swept += 1
                    continue
            if accepted_at <= now - self._max_queue_s:
                swept += await self._time_out(execution_id, language, now - accepted_at)
        return swept

    async def _time_out(self, execution_id: str, language: str, waited_s: float) -> int:
        """End the execution `failed` if it is still queued (nothing ran: no output); 1 if
        this call ended it."""
        result = wire.Result(execution_id, language, Status.FAILED, failure_code=QUEUE_TIMEOUT)
        token = f"{self._queue.worker_id}:queue-timeout"
        reply = await until_redis(
            lambda: self._transitions.end_queued(result, token, self._ttl), "ending a queued job"
        )
        if reply != ENDED_NOW:
            return 0
        log.error(
            "execution=%s language=%s still queued after %.0f s: ending it",
            execution_id,
            language,
            waited_s,
        )
        metrics.count_end(result)
        return 1

    async def _fail(
        self, execution_id: str, language: str, attempt: int, token: str, failure_code: str
    ) -> None:
        """End the execution `failed`, keeping whatever output already reached the user."""
        result = await until_redis(
            lambda: self._failed(execution_id, language, failure_code), "reading output"
        )
        reply = await until_redis(
            lambda: self._transitions.finish(attempt, token, result, self._ttl),
            "recording a failure",
        )
        if reply == OK:
            metrics.count_end(result)

    async def _failed(self, execution_id: str, language: str, failure_code: str) -> wire.Result:
        """A failed result that keeps whatever output already reached the user."""
        frames = await self._redis.lrange(keys.output_log(execution_id), 0, -1)
        text: dict[str, list[str]] = {"stdout": [], "stderr": []}
        for raw in cast(list[bytes], frames):
            event = wire.decode_event(raw)
            if isinstance(event, wire.OutputEvent):
                text[event.type].append(event.data)
        return wire.Result(
            execution_id,
            language,
            Status.FAILED,
            stdout="".join(text["stdout"]),
            stderr="".join(text["stderr"]),
            failure_code=failure_code,
        )
