"""The worker process: warm pools plus the job consumer, with a graceful stop."""

from __future__ import annotations

import logging

import anyio
from redis.asyncio import Redis

from poolmgr.consumer import Consumer
from poolmgr.engine import Engine
from poolmgr.executor import Executor
from poolmgr.pool import Pool
from poolmgr.sandbox import LABEL_WORKER
from runtimes.registry import RUNTIMES
from runtimes.settings import Settings

log = logging.getLogger(__name__)

MAX_CONCURRENT_CREATES = 2
STOP_GRACE_S = 25.0


class Worker:
    """Owns the engine adapter, one pool per language and the consumer."""

    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.engine = Engine(settings.docker_url)
        limiter = anyio.CapacityLimiter(MAX_CONCURRENT_CREATES)
        self.pools = {
            lang: Pool(rt, self.engine, settings, limiter) for lang, rt in RUNTIMES.items()
        }
        executor = Executor(self.engine, self.pools, settings.max_output_bytes)
        self.consumer = Consumer(
            redis,
            executor,
            list(self.pools),
            settings.worker_id,
            settings.worker_slots,
            settings.result_ttl_s,
        )
        self._consumer_done = anyio.Event()

    async def ready(self) -> bool:
        """True while the Docker engine answers."""
        return await self.engine.ping()

    async def run(self) -> None:
        """Run until cancelled; pools remove their warm containers on the way out."""
        await self.reap_own()
        log.info("worker %s started: languages=%s", self.settings.worker_id, list(self.pools))
        try:
            async with anyio.create_task_group() as tg:
                for pool in self.pools.values():
                    tg.start_soon(pool.run)
                await self.consumer.run()
                self._consumer_done.set()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.reap_own()
                self.engine.close()
            log.info("worker %s stopped", self.settings.worker_id)

    async def stop(self) -> None:
        """Stop claiming jobs and let running ones finish within the grace period."""
        self.consumer.stopping = True
        with anyio.move_on_after(STOP_GRACE_S):
            await self._consumer_done.wait()

    async def reap_own(self) -> None:
        for container_id in await self.engine.list_ids({LABEL_WORKER: self.settings.worker_id}):
            await self.engine.remove(container_id)
