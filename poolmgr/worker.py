"""The worker process: heartbeat, warm pools, reaper and the job consumer, with a graceful stop."""

from __future__ import annotations

import logging

import anyio
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from poolmgr.consumer import Consumer
from poolmgr.engine import Engine
from poolmgr.engine_errors import EngineError
from poolmgr.executor import Executor
from poolmgr.heartbeat import Heartbeat
from poolmgr.load import LoadReporter
from poolmgr.pool import Pool
from poolmgr.queue import JobQueue
from poolmgr.reaper import Reaper
from poolmgr.recovery import Recovery
from poolmgr.sandbox import VERSION_LABEL
from runtimes import keys, wire
from runtimes.redis_client import sharded
from runtimes.registry import RUNTIMES
from runtimes.settings import Settings
from runtimes.transitions import Transitions

log = logging.getLogger(__name__)

START_MARGIN_S = 5.0  # a container start and the result's writes, beside compile and run


def drain_grace_s(settings: Settings) -> float:
    """How long a stopping worker lets its running executions finish: the longest compile
    and run a request may ask for, and a start. Cut short, one would end as lost."""
    return settings.compile_timeout_s + wire.TIMEOUT_RANGE[1] + START_MARGIN_S


class Worker:
    """Owns the engine adapter, one pool per language, the reaper, recovery and the consumer."""

    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.engine = Engine(settings.docker_url)
        self._redis = redis
        limiter = anyio.CapacityLimiter(settings.max_concurrent_creates)
        self.pools = {
            lang: Pool(RUNTIMES[lang], self.engine, settings, limiter)
            for lang in settings.worker_languages
        }
        transitions = Transitions(redis)
        self.queue = queue = JobQueue(
            redis, settings.worker_id, transitions, settings.result_ttl_s, sharded(redis)
        )
        self.heartbeat = Heartbeat(redis, settings.worker_id, settings.heartbeat_ttl_s)
        executor = Executor(
            self.engine, self.pools, redis, settings.max_output_bytes, settings.compile_timeout_s
        )
        languages = list(self.pools)
        in_flight: set[str] = set()
        self.recovery = Recovery(
            redis,
            queue,
            transitions,
            languages,
            settings.result_ttl_s,
            settings.reap_interval_s,
            in_flight,
            max_queue_s=settings.max_queue_s,
        )
        self.consumer = Consumer(
            redis,
            queue,
            transitions,
            executor,
            self.recovery,
            self.pools,
            settings.worker_slots,
            settings.result_ttl_s,
            in_flight,
            self.heartbeat,
        )
        self.reaper = Reaper(
            self.engine,
            redis,
            settings.worker_id,
            settings.cluster,
            settings.reap_interval_s,
            lambda: set().union(*(pool.known_ids() for pool in self.pools.values())),
        )
        self.load = LoadReporter(
            redis,
            settings.worker_id,
            self.pools,
            lambda: (self.consumer.capacity.total, self.consumer.capacity.free),
        )
        self._consumer_done = anyio.Event()

    async def ready(self) -> bool:
        """True while every pool can create containers and the engine answers; the ping has
        its own short deadline, so a hung engine reads as not ready instead of hanging /readyz."""
        return all(p.serviceable for p in self.pools.values()) and await self.engine.ping()

    async def run(self) -> None:
        """Run until cancelled; warm containers are removed on the way out."""
        worker_id = self.settings.worker_id
        # Alive before the first container exists, so no other worker reaps it.
        await self.heartbeat.renew()
        await self.reaper.reap_own()
        await self.queue.ensure_groups(list(self.pools))
        await self._publish_versions()
        await self.recovery.recover(own=True)  # jobs of this worker id's previous life
        log.info("worker %s started: languages=%s", worker_id, list(self.pools))
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.heartbeat.beat)
                tg.start_soon(self.reaper.run)
                tg.start_soon(self.recovery.run)
                tg.start_soon(self.load.run)
                for pool in self.pools.values():
                    await tg.start(pool.run)
                await self.consumer.run()
                self._consumer_done.set()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.reaper.reap_own()
                await self.engine.aclose()
            log.info("worker %s stopped", worker_id)

    async def _publish_versions(self) -> None:
        """The versions of this worker's images, for `GET /api/v1/runtimes`."""
        versions: dict[FieldT, EncodableT] = {}
        for language, pool in self.pools.items():
            try:
                labels = await self.engine.image_labels(
                    pool.runtime.image(self.settings.image_prefix)
                )
            except EngineError as exc:  # the engine is down: the next start tells
                log.warning("cannot read the %s image's version: %s", language, exc)
                continue
            if labels and VERSION_LABEL in labels:
                versions[language] = labels[VERSION_LABEL]
        if versions:
            await self._redis.hset(keys.RUNTIME_VERSIONS, mapping=versions)

    async def stop(self) -> None:
        """Stop claiming jobs and let running ones finish within the grace period."""
        self.consumer.stopping = True
        for pool in self.pools.values():
            pool.stop_refilling()
        with anyio.move_on_after(drain_grace_s(self.settings)):
            await self._consumer_done.wait()
