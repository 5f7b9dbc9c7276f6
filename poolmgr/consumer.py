"""Reads jobs from the language streams through the consumer group, within the worker's slots."""

from __future__ import annotations

import logging
import time
from typing import cast

import anyio
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.typing import KeyT, StreamIdT

from poolmgr import metrics
from poolmgr.capacity import Capacity
from poolmgr.executor import Executor
from poolmgr.pool import Pool
from poolmgr.publisher import ExecutionPublisher
from runtimes import keys, wire

log = logging.getLogger(__name__)

BLOCK_MS = 1000


class Consumer:
    """Claims a job only when its weight fits and its pool can start it; acks it once final."""

    def __init__(
        self,
        redis: Redis,
        executor: Executor,
        pools: dict[str, Pool],
        worker_id: str,
        capacity: int,
        result_ttl_s: int,
    ) -> None:
        self._redis = redis
        self._executor = executor
        self._pools = pools
        self._worker_id = worker_id
        self.capacity = Capacity(capacity)
        self._ttl = result_ttl_s
        self.stopping = False

    async def ensure_groups(self) -> None:
        for language in self._pools:
            try:
                await self._redis.xgroup_create(
                    keys.job_stream(language), keys.WORKER_GROUP, id="0", mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def _readable(self) -> dict[KeyT, StreamIdT]:
        """The streams this worker can take a job from right now."""
        return {
            keys.job_stream(language): ">"
            for language, pool in self._pools.items()
            if pool.accepting and self.capacity.fits(pool.runtime.weight)
        }

    async def run(self) -> None:
        """Until `stopping`, take jobs that fit; running jobs finish inside this group."""
        await self.ensure_groups()
        async with anyio.create_task_group() as tg:
            while not self.stopping:
                streams = self._readable()
                if not streams:
                    with anyio.move_on_after(BLOCK_MS / 1000):
                        await self.capacity.wait_freed()
                    continue
                entry = await self._read_one(streams)
                if entry is not None:
                    self.capacity.take(self._pools[entry[2].language].runtime.weight)
                    tg.start_soon(self._handle, *entry, time.monotonic())

    async def _read_one(self, streams: dict[KeyT, StreamIdT]) -> tuple[str, str, wire.Job] | None:
        reply = await self._redis.xreadgroup(
            keys.WORKER_GROUP, self._worker_id, streams, count=1, block=BLOCK_MS
        )
        for stream, entries in cast(
            list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], reply or []
        ):
            for entry_id, fields in entries:
                return stream.decode(), entry_id.decode(), wire.decode_job(fields[b"job"])
        return None

    async def _handle(self, stream: str, entry_id: str, job: wire.Job, read_at: float) -> None:
        try:
            publisher = ExecutionPublisher(self._redis, job, self._ttl)
            metrics.ACTIVE.labels(job.language).inc()
            try:
                result = await self._executor.execute(job, publisher, read_at)
            finally:
                metrics.ACTIVE.labels(job.language).dec()
            with anyio.CancelScope(shield=True):
                await publisher.finish(result)
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.xack(stream, keys.WORKER_GROUP, entry_id)
                    pipe.xdel(stream, entry_id)
                    await pipe.execute()
        finally:
            self.capacity.give(self._pools[job.language].runtime.weight)
