"""Reads jobs from the language streams through the consumer group, within the worker's slots."""

from __future__ import annotations

import logging
from typing import cast

import anyio
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.typing import KeyT, StreamIdT

from poolmgr import metrics
from poolmgr.executor import Executor
from poolmgr.publisher import ExecutionPublisher
from runtimes import keys, wire

log = logging.getLogger(__name__)

BLOCK_MS = 1000


class Consumer:
    """Claims a job only when a slot is free, runs it, and acknowledges it once it is final."""

    def __init__(
        self,
        redis: Redis,
        executor: Executor,
        languages: list[str],
        worker_id: str,
        slots: int,
        result_ttl_s: int,
    ) -> None:
        self._redis = redis
        self._executor = executor
        self._streams: dict[KeyT, StreamIdT] = {keys.job_stream(lang): ">" for lang in languages}
        self._worker_id = worker_id
        self._slots = anyio.Semaphore(slots)
        self._ttl = result_ttl_s
        self.stopping = False

    async def ensure_groups(self) -> None:
        for stream in self._streams:
            try:
                await self._redis.xgroup_create(stream, keys.WORKER_GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def run(self) -> None:
        """Until `stopping`, take one job per free slot; running jobs finish in this group."""
        await self.ensure_groups()
        async with anyio.create_task_group() as tg:
            while not self.stopping:
                await self._slots.acquire()
                try:
                    entry = await self._read_one()
                except BaseException:
                    self._slots.release()
                    raise
                if entry is None:
                    self._slots.release()
                    continue
                tg.start_soon(self._handle, *entry)

    async def _read_one(self) -> tuple[str, str, wire.Job] | None:
        reply = await self._redis.xreadgroup(
            keys.WORKER_GROUP, self._worker_id, self._streams, count=1, block=BLOCK_MS
        )
        for stream, entries in cast(
            list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], reply or []
        ):
            for entry_id, fields in entries:
                return stream.decode(), entry_id.decode(), wire.decode_job(fields[b"job"])
        return None

    async def _handle(self, stream: str, entry_id: str, job: wire.Job) -> None:
        try:
            publisher = ExecutionPublisher(self._redis, job, self._ttl)
            metrics.ACTIVE.labels(job.language).inc()
            try:
                result = await self._executor.execute(job, publisher)
            finally:
                metrics.ACTIVE.labels(job.language).dec()
            with anyio.CancelScope(shield=True):
                await publisher.finish(result)
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.xack(stream, keys.WORKER_GROUP, entry_id)
                    pipe.xdel(stream, entry_id)
                    await pipe.execute()
        finally:
            self._slots.release()
