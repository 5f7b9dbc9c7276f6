"""Every accepted job ends exactly once: retries for infrastructure failures, and the jobs of
workers that died mid-execution (their heartbeat expired) taken over and settled.
"""

from __future__ import annotations

import logging
from typing import cast

from redis.asyncio import Redis

from poolmgr import heartbeat, metrics
from poolmgr.periodic import every
from poolmgr.queue import CLAIM_IDLE_MS, Entry, JobQueue, Pending
from poolmgr.redis_retry import until_redis
from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.transitions import OK, Transitions

log = logging.getLogger(__name__)

MAX_RETRIES = 2  # a job is tried at most three times
ORPHAN_IDLE_MS = 10_000


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
    ) -> None:
        """`in_flight`: ids of the entries this worker's consumer is handling right now."""
        self._redis = redis
        self._queue = queue
        self._transitions = transitions
        self._languages = languages
        self._ttl = result_ttl_s
        self._interval = interval_s
        self._in_flight = in_flight

    async def run(self) -> None:
        """The watchdog: every interval, settle the jobs of dead workers."""
        await every(self._interval, "recovery", self.recover)

    async def recover(self, own: bool = False) -> int:
        """Settle entries pending with dead consumers (and this worker's past life if `own`)."""
        me = self._queue.worker_id
        settled = 0
        for language in self._languages:
            pending = await self._queue.pending(language)
            others = sorted({p.consumer for p in pending if p.consumer != me})
            alive = await heartbeat.alive(self._redis, others)
            orphans = [p.entry_id for p in pending if self._orphaned(p, alive, own)]
            if not orphans:
                continue
            for entry in await self._queue.claim(language, orphans, 0 if own else CLAIM_IDLE_MS):
                log.warning("execution=%s recovered from a dead worker", entry.job.execution_id)
                await self.settle(entry, "worker_lost")
                settled += 1
        return settled

    def _orphaned(self, entry: Pending, alive: dict[str, bool], own: bool) -> bool:
        """A dead worker's entry; or one of ours that nothing here handles (our earlier life,
        or an entry whose delivery reply was lost to a dropped connection)."""
        if entry.consumer != self._queue.worker_id:
            return not alive[entry.consumer]
        lost = entry.entry_id not in self._in_flight and entry.idle_ms > ORPHAN_IDLE_MS
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
        result = await until_redis(lambda: self._failed(job, failure_code), "reading output")
        reply = await until_redis(
            lambda: self._transitions.finish(job.attempt, result, self._ttl), "recording a failure"
        )
        if reply == OK:
            metrics.count_end(result)
        await self._queue.ack(entry)

    async def _failed(self, job: wire.Job, failure_code: str) -> wire.Result:
        """A failed result that keeps whatever output already reached the user."""
        frames = await self._redis.lrange(keys.output_log(job.execution_id), 0, -1)
        text: dict[str, list[str]] = {"stdout": [], "stderr": []}
        for raw in cast(list[bytes], frames):
            event = wire.decode_event(raw)
            if isinstance(event, wire.OutputEvent):
                text[event.type].append(event.data)
        return wire.Result(
            job.execution_id,
            job.language,
            Status.FAILED,
            stdout="".join(text["stdout"]),
            stderr="".join(text["stderr"]),
            failure_code=failure_code,
        )
