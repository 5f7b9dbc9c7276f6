"""Reads jobs off the queue within the worker's capacity, runs them, settles every one."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from enum import Enum

import anyio
from anyio.abc import TaskGroup
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from poolmgr import metrics
from poolmgr.capacity import Capacity
from poolmgr.executor import Executor, TransientFailure
from poolmgr.heartbeat import Heartbeat
from poolmgr.pool import Pool
from poolmgr.publisher import ExecutionPublisher, Superseded
from poolmgr.queue import BLOCK_MS, Entry, JobQueue
from poolmgr.recovery import Recovery
from runtimes.transitions import Transitions

log = logging.getLogger(__name__)

READ_RETRY_S = 0.5


class Ended(Enum):
    """How this worker's part in a job ended."""

    DONE = "done"  # the execution has its terminal status: ack
    ABANDONED = "abandoned"  # another worker has it now, or will: leave the entry alone


class Consumer:
    """Claims jobs only while their weights fit and their pools can start them; acks once final."""

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
        heartbeat: Heartbeat,
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
        self._heartbeat = heartbeat
        self._turn = 0
        self.stopping = False

    def _readable(self, first: Sequence[str] = ()) -> tuple[list[str], list[str]]:
        """Languages to read one job of each at once (see `JobQueue.read`), whose weights all
        fit together; and the languages to wait on, each of which fits on its own.

        The start rotates, so that when not all fit together, no language is always left
        out of the first. Waiting covers every language that fits, so a job of one left out
        this turn still wakes the worker at once, claiming nothing (it may not fit beside
        those read); `first`, the languages whose jobs woke it (`JobQueue.woken`), go first,
        so that the next turn claims their jobs, as many as fit.
        """
        order = list(self._pools)
        self._turn = (self._turn + 1) % len(order)
        rotated = order[self._turn :] + order[: self._turn]
        chosen: list[str] = []
        waited: list[str] = []
        weights: list[int] = []
        for language in dict.fromkeys([*(f for f in first if f in self._pools), *rotated]):
            pool = self._pools[language]
            if not pool.accepting or not self.capacity.fits(pool.runtime.weight):
                continue
            waited.append(language)
            if self.capacity.fits_together([*weights, pool.runtime.weight]):
                chosen.append(language)
                weights.append(pool.runtime.weight)
        return chosen, waited

    async def run(self) -> None:
        """Until `stopping`, take jobs that fit; running jobs finish inside this group."""
        async with anyio.create_task_group() as tg:
            while not self.stopping:
                languages, waited = self._readable(self._queue.woken)
                if not languages or self._heartbeat.lost.is_set():
                    with anyio.move_on_after(BLOCK_MS / 1000):
                        await self.capacity.wait_freed()
                    continue
                try:
                    entries = await self._queue.read(languages, waited)
                except (RedisError, OSError) as exc:
                    await self._redis_trouble(exc)
                    continue
                for entry in entries:
                    await self._start(tg, entry)

    async def _start(self, tg: TaskGroup, entry: Entry) -> None:
        """Run the entry once its weight fits: at once, but for the second of a read that
        brought a job of each priority of one language (see `JobQueue.read`), which waits
        here, vouched for as in flight, until a running job frees the room."""
        weight = self._pools[entry.job.language].runtime.weight
        self._in_flight.add(entry.ref)
        while not self.capacity.fits(weight):
            await self.capacity.wait_freed()
        self.capacity.take(weight)
        tg.start_soon(self._handle, entry, time.monotonic())

    async def _redis_trouble(self, exc: Exception) -> None:
        """Wait out a Redis outage; a restarted Redis without data needs its groups again."""
        log.warning("cannot read the queue: %s", exc)
        await anyio.sleep(READ_RETRY_S)
        if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
            await self._queue.ensure_groups(list(self._pools))

    async def _handle(self, entry: Entry, read_at: float) -> None:
        job = entry.job
        metrics.ACTIVE.labels(job.language).inc()
        try:
            ended = await self._vouched(entry, read_at)
            with anyio.CancelScope(shield=True):
                if ended is Ended.DONE:
                    await self._queue.ack(entry)
                elif isinstance(ended, str):
                    await self._recovery.settle(entry, ended)
        except Exception:  # left pending: the watchdog settles it once it is idle
            log.exception("execution=%s could not be settled now", job.execution_id)
        finally:
            metrics.ACTIVE.labels(job.language).dec()
            self._in_flight.discard(entry.ref)
            self.capacity.give(self._pools[job.language].runtime.weight)

    async def _vouched(self, entry: Entry, read_at: float) -> Ended | str:
        """Execute, but stop as soon as this worker's heartbeat lapses: its peers own it then."""
        lost = self._heartbeat.lost
        async with anyio.create_task_group() as tg:

            async def stop_when_lost() -> None:
                await lost.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(stop_when_lost)
            ended = await self._execute(entry, read_at)
            tg.cancel_scope.cancel()
            return ended
        log.warning("execution=%s abandoned: heartbeat lost", entry.job.execution_id)
        return Ended.ABANDONED

    async def _execute(self, entry: Entry, read_at: float) -> Ended | str:
        """How the execution ended here, or the failure code to settle the job with."""
        job = entry.job
        owner = f"{self._queue.worker_id}:{entry.entry_id}"
        publisher = ExecutionPublisher(self._redis, self._transitions, job, owner, self._ttl)
        try:
            await self._executor.execute(job, publisher, read_at)
        except TransientFailure as exc:
            log.warning("execution=%s transient failure: %s", job.execution_id, exc)
            return "no_container"
        except Superseded as exc:
            log.warning("execution=%s abandoned: %s", job.execution_id, exc)
            return Ended.ABANDONED
        except Exception:  # a bug or an unforeseen fault: this job, not the worker, pays
            log.exception("execution=%s failed inside the worker", job.execution_id)
            return "worker_error"
        return Ended.DONE
