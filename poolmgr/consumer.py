"""Reads jobs off the queue within the worker's capacity, runs them, settles every one."""

from __future__ import annotations

import logging
import time

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from poolmgr import metrics
from poolmgr.capacity import Capacity
from poolmgr.executor import Executor, TransientFailure
from poolmgr.pool import Pool
from poolmgr.publisher import ExecutionPublisher
from poolmgr.queue import BLOCK_MS, Entry, JobQueue
from poolmgr.recovery import Recovery
from runtimes.transitions import Transitions

log = logging.getLogger(__name__)

READ_RETRY_S = 0.5


class Consumer:
    """Claims a job only when its weight fits and its pool can start it; acks it once final."""

    def __init__(
        self,
        redis: Redis,
        queue: JobQueue,
        transitions: Transitions,
        executor: Executor,
        recovery: Recovery,
        pools: dict[str, Pool],
        capacity: int,
        result_ttl_s: int,
        in_flight: set[str],
    ) -> None:
        self._redis = redis
        self._queue = queue
        self._transitions = transitions
        self._executor = executor
        self._recovery = recovery
        self._pools = pools
        self.capacity = Capacity(capacity)
        self._ttl = result_ttl_s
        self._in_flight = in_flight
        self.stopping = False

    def _readable(self) -> list[str]:
        """The languages this worker can take a job of right now."""
        return [
            language
            for language, pool in self._pools.items()
            if pool.accepting and self.capacity.fits(pool.runtime.weight)
        ]

    async def run(self) -> None:
        """Until `stopping`, take jobs that fit; running jobs finish inside this group."""
        async with anyio.create_task_group() as tg:
            while not self.stopping:
                languages = self._readable()
                if not languages:
                    with anyio.move_on_after(BLOCK_MS / 1000):
                        await self.capacity.wait_freed()
                    continue
                try:
                    entry = await self._queue.read(languages)
                except (RedisError, OSError) as exc:
                    await self._redis_trouble(exc)
                    continue
                if entry is not None:
                    self.capacity.take(self._pools[entry.job.language].runtime.weight)
                    tg.start_soon(self._handle, entry, time.monotonic())

    async def _redis_trouble(self, exc: Exception) -> None:
        """Wait out a Redis outage; a restarted Redis without data needs its groups again."""
        log.warning("cannot read the queue: %s", exc)
        await anyio.sleep(READ_RETRY_S)
        if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
            await self._queue.ensure_groups(list(self._pools))

    async def _handle(self, entry: Entry, read_at: float) -> None:
        job = entry.job
        self._in_flight.add(entry.entry_id)
        metrics.ACTIVE.labels(job.language).inc()
        try:
            failure = await self._execute(entry, read_at)
            with anyio.CancelScope(shield=True):
                if failure is None:
                    await self._queue.ack(entry)
                else:
                    await self._recovery.settle(entry, failure)
        except Exception:  # left pending: the watchdog settles it once it is idle
            log.exception("execution=%s could not be settled now", job.execution_id)
        finally:
            metrics.ACTIVE.labels(job.language).dec()
            self._in_flight.discard(entry.entry_id)
            self.capacity.give(self._pools[job.language].runtime.weight)

    async def _execute(self, entry: Entry, read_at: float) -> str | None:
        """None once the execution has ended; else the failure code to settle the job with."""
        job = entry.job
        publisher = ExecutionPublisher(self._redis, self._transitions, job, self._ttl)
        try:
            await self._executor.execute(job, publisher, read_at)
        except TransientFailure as exc:
            log.warning("execution=%s transient failure: %s", job.execution_id, exc)
            return "no_container"
        except Exception:  # a bug or an unforeseen fault: this job, not the worker, pays
            log.exception("execution=%s failed inside the worker", job.execution_id)
            return "worker_error"
        return None
