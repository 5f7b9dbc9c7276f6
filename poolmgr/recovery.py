"""Every accepted job ends exactly once: retries for infrastructure failures, and the jobs of
workers that died mid-execution (their heartbeat expired) taken over and settled.
"""

from __future__ import annotations

import logging
from typing import cast

from redis.asyncio import Redis

from poolmgr import heartbeat
from poolmgr.periodic import every
from poolmgr.queue import CLAIM_IDLE_MS, Entry, JobQueue
from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.transitions import OK, Transitions

log = logging.getLogger(__name__)

MAX_RETRIES = 2  # a job is tried at most three times


class Recovery:
    def __init__(
        self,
        redis: Redis,
        queue: JobQueue,
        transitions: Transitions,
        languages: list[str],
        result_ttl_s: int,
        interval_s: float,
    ) -> None:
        self._redis = redis
        self._queue = queue
        self._transitions = transitions
        self._languages = languages
        self._ttl = result_ttl_s
        self._interval = interval_s

    async def run(self) -> None:
        """The watchdog: every interval, settle the jobs of dead workers."""
        await every(self._interval, "recovery", self.recover)

    async def recover(self, own: bool = False) -> int:
        """Settle entries pending with dead consumers (and this worker's past life if `own`)."""
        me = self._queue.worker_id
        settled = 0
        for language in self._languages:
            pending = await self._queue.pending(language)
            others = sorted({consumer for _, consumer in pending if consumer != me})
            alive = await heartbeat.alive(self._redis, others)
            orphans = [e for e, c in pending if (c == me and own) or (c != me and not alive[c])]
            if not orphans:
                continue
            for entry in await self._queue.claim(language, orphans, 0 if own else CLAIM_IDLE_MS):
                log.warning("execution=%s recovered from a dead worker", entry.job.execution_id)
                await self.settle(entry, "worker_lost")
                settled += 1
        return settled

    async def settle(self, entry: Entry, failure_code: str) -> None:
        """Re-run the job if nothing reached the user and tries remain; else end it as failed."""
        job = entry.job
        if job.attempt < MAX_RETRIES:
            reply = await self._transitions.requeue(job.execution_id)
            if reply == OK:
                log.info(
                    "execution=%s retry %d (%s)", job.execution_id, job.attempt + 1, failure_code
                )
                await self._queue.retry(entry)
                return
            if reply != "has_output":  # already terminal, or expired: nothing left to do
                await self._queue.ack(entry)
                return
        else:
            failure_code = "retries_exhausted"
            await self._queue.dead_letter(entry, failure_code)
        await self._transitions.finish(await self._failed(job, failure_code), self._ttl)
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
