"""A per-language pool of warm containers: claim one, or cold-start; never reuse; refill."""

from __future__ import annotations

import logging
import time
from collections import deque

import anyio
from anyio.abc import TaskGroup

from poolmgr import metrics
from poolmgr.container import Container
from poolmgr.engine import Engine, EngineError
from poolmgr.sandbox import container_config
from runtimes.registry import Runtime
from runtimes.settings import Settings

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 30
RETRY_DELAY_S = 1.0
DEMAND_WINDOW_S = 300.0


class Pool:
    """Warm containers of one language, owned by one worker."""

    def __init__(
        self,
        runtime: Runtime,
        engine: Engine,
        settings: Settings,
        create_limiter: anyio.CapacityLimiter,
    ) -> None:
        self.runtime = runtime
        self.language = runtime.language
        self.target = settings.pool_size_for(runtime.language)
        self._engine = engine
        self._settings = settings
        self._limiter = create_limiter
        self._warm: deque[Container] = deque()
        self._creating = 0
        self._watches: dict[str, anyio.CancelScope] = {}
        self._wake = anyio.Event()
        self._tg: TaskGroup | None = None
        self.starts = metrics.StartWindow(DEMAND_WINDOW_S)
        metrics.WARM.labels(self.language).set_function(lambda: len(self._warm))
        metrics.TARGET.labels(self.language).set_function(lambda: self.target)
        metrics.FILL.labels(self.language).set_function(
            lambda: len(self._warm) / self.target if self.target else 1.0
        )
        metrics.COLD_RATE.labels(self.language).set_function(self.starts.cold_rate)

    @property
    def warm(self) -> int:
        return len(self._warm)

    def claim(self) -> Container | None:
        """Hand out a live warm container, or None; atomic since it never awaits."""
        while self._warm:
            container = self._warm.popleft()
            self._watches.pop(container.id).cancel()
            self._wake.set()
            if container.alive:
                return container
            log.warning("discarding dead warm container %s", container.id[:12])
            self.discard(container)
        return None

    def record_start(self, cold: bool) -> None:
        """Count a container handed to an execution, for the cold-start rate."""
        metrics.STARTS.labels(self.language, "cold" if cold else "warm").inc()
        self.starts.record(cold)

    async def cold_start(self) -> Container:
        """A fresh container for a job that found the pool empty."""
        return await self._create()

    def discard(self, container: Container) -> None:
        """Destroy a used or broken container in the background."""
        if self._tg is None:
            raise RuntimeError("pool is not running")
        self._tg.start_soon(self._destroy, container)

    async def run(self) -> None:
        """Keep `target` containers warm (those being created count) until cancelled."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                while True:
                    while len(self._warm) + self._creating < self.target:
                        self._creating += 1
                        tg.start_soon(self._refill_one)
                    await self._wake.wait()
                    self._wake = anyio.Event()
        finally:
            self._tg = None
            with anyio.CancelScope(shield=True):
                await self._drain()

    async def _refill_one(self) -> None:
        try:
            container = await self._create()
        except (EngineError, TimeoutError, OSError) as exc:
            log.error("could not warm a %s container: %s", self.language, exc)
            await anyio.sleep(RETRY_DELAY_S)
        else:
            self._add_warm(container)
        finally:
            self._creating -= 1
            self._wake.set()

    def _add_warm(self, container: Container) -> None:
        assert self._tg is not None
        scope = self._watches[container.id] = anyio.CancelScope()
        self._warm.append(container)
        self._tg.start_soon(self._watch, container, scope)

    async def _watch(self, container: Container, scope: anyio.CancelScope) -> None:
        """Drop a warm container the moment it dies, so a claim never sees it."""
        with scope:
            await container.stream.wait_closed()
            log.warning("warm %s container %s died; replacing it", self.language, container.id[:12])
            self._warm.remove(container)
            del self._watches[container.id]
            self._wake.set()
            self.discard(container)

    async def _create(self) -> Container:
        config = container_config(self.runtime, self._settings)
        async with self._limiter:
            started = time.monotonic()
            with anyio.CancelScope(shield=True):  # a created container must not lose its id
                container_id = await self._engine.create(config)
            stream = None
            try:
                stream = await self._engine.attach(container_id)
                container = Container(container_id, self.language, stream)
                await self._engine.start(container_id)
                with anyio.fail_after(READY_TIMEOUT_S):
                    await container.wait_ready()
            except BaseException:
                with anyio.CancelScope(shield=True):
                    if stream is not None:
                        await stream.aclose()
                    await self._engine.remove(container_id)
                raise
        log.debug(
            "container %s ready in %.0f ms", container_id[:12], (time.monotonic() - started) * 1e3
        )
        return container

    async def _destroy(self, container: Container) -> None:
        """Shielded: a pool that is being cancelled still removes what it started removing."""
        with anyio.CancelScope(shield=True):
            try:
                await container.stream.aclose()
                await self._engine.remove(container.id)
            except EngineError as exc:
                log.error("could not remove container %s: %s", container.id[:12], exc)

    async def _drain(self) -> None:
        while self._warm:
            container = self._warm.popleft()
            self._watches.pop(container.id).cancel()
            await self._destroy(container)
