"""A per-language pool of warm containers: claim one, or cold-start; never reuse; refill.

The pool keeps `target` containers warm or on their way (those being created count as
supply), where the demand sizer sets the target. A claim never awaits, so two claims can
never get the same container. A claimant that finds none warm waits for the next container
to become ready, in arrival order, and starts a create of its own only when every create
under way is already promised to a claimant ahead of it. Warm containers are watched, so
one that dies is dropped at once; stale or outdated ones are recycled a few per tick;
failing creates trip a circuit breaker instead of hammering the engine.
"""

from __future__ import annotations

import logging
import time
from collections import deque

import anyio
from anyio.abc import TaskGroup, TaskStatus

from poolmgr import metrics
from poolmgr.breaker import CircuitBreaker
from poolmgr.container import AgentGone, Container
from poolmgr.engine import Engine
from poolmgr.engine_errors import EngineError
from poolmgr.ewma import Ewma
from poolmgr.sandbox import container_config
from poolmgr.sizing import DemandSizer
from runtimes.runtime import Runtime
from runtimes.settings import Settings

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 30
TICK_S = 1.0
IMAGE_REFRESH_S = 30.0
RECYCLE_PER_TICK = 1
# After a claim that leaves warm containers behind, the refill waits this long (or until the
# execution ends): creating a container is CPU-heavy and would compete with the program.
REFILL_DEFER_S = 0.1
INITIAL_SERVICE_S = 0.1  # a warm hello world; the first executions correct it


class PoolUnavailable(RuntimeError):
    """No container can be created now (the engine keeps failing: the circuit is open)."""


class _Waiter:
    """A claimant that found no warm container, waiting for the next one to become ready."""

    def __init__(self) -> None:
        self.served = anyio.Event()
        self.container: Container | None = None
        self.error: PoolUnavailable | None = None


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
        self.policy = settings.pool_policy(runtime.language)
        self.sizer = DemandSizer(self.policy)
        self.target = self.policy.min
        self.breaker = CircuitBreaker()
        self.service_s = Ewma(INITIAL_SERVICE_S)  # claim to result, for wait estimates
        self._engine = engine
        self._settings = settings
        self._limiter = create_limiter
        self._image = runtime.image(settings.image_prefix)
        self._image_id: str | None = None
        self._image_checked = 0.0
        self._warm: deque[Container] = deque()
        self._creating = 0
        self._waiters: deque[_Waiter] = deque()  # in arrival order
        self._in_use: set[str] = set()  # handed to executions, not yet discarded
        self._quiet_until = 0.0
        self._draining = False
        self._watches: dict[str, anyio.CancelScope] = {}
        self._wake = anyio.Event()
        self._tg: TaskGroup | None = None
        self.starts = metrics.StartWindow(self.policy.window_s)
        self._export_metrics()

    def _export_metrics(self) -> None:
        lang = self.language
        metrics.WARM.labels(lang).set_function(lambda: len(self._warm))
        metrics.TARGET.labels(lang).set_function(lambda: self.target)
        metrics.FILL.labels(lang).set_function(
            lambda: len(self._warm) / self.target if self.target else 1.0
        )
        metrics.COLD_RATE.labels(lang).set_function(self.starts.cold_rate)
        metrics.CIRCUIT_OPEN.labels(lang).set_function(
            lambda: float(self.breaker.is_open(time.monotonic()))
        )

    @property
    def warm(self) -> int:
        return len(self._warm)

    @property
    def accepting(self) -> bool:
        """False from the breaker tripping until a create succeeds again: meanwhile jobs wait
        in the queue (and /readyz says why) instead of failing one after another. False while
        draining too, so the worker's load report stops offering this language."""
        return not self._draining and self.serviceable

    @property
    def serviceable(self) -> bool:
        """A container can be had: one is warm, or creates work (the breaker is closed)."""
        return bool(self._warm) or not self.breaker.tripped

    def claim(self) -> Container | None:
        """Hand out a live, current warm container, or None; atomic since it never awaits."""
        now = time.monotonic()
        self.sizer.record_claim(now)
        self._retarget(now)
        return self._take_warm(now)

    def _take_warm(self, now: float) -> Container | None:
        while self._warm:
            container = self._pop_warm()
            if container.alive and container.image_id == self._image_id:
                self._in_use.add(container.id)
                if self._warm and now >= self._quiet_until:  # never extended: a bounded delay
                    self._quiet_until = now + REFILL_DEFER_S
                return container
            log.warning(
                "discarding unusable warm container %s",
                container.id[:12],
                extra=self._event("unusable", container),
            )
            self.discard(container)
        return None

    def record_start(self, cold: bool) -> None:
        """Count a container handed to an execution, for the cold-start rate."""
        metrics.STARTS.labels(self.language, "cold" if cold else "warm").inc()
        self.starts.record(cold)

    async def cold_start(self) -> Container:
        """A container for a claimant that found none warm: one that became warm since, else
        the first to become ready, in arrival order.

        Creates already under way are supply: a claimant that started its own create would
        wait behind them for a create slot while a refill finishing first went to whoever
        claimed next, so at saturation latency would depend on luck, not arrival order.
        """
        if self._tg is None:
            raise RuntimeError("pool is not running")
        now = time.monotonic()
        if (container := self._take_warm(now)) is not None:  # one became ready meanwhile
            return container
        if self.breaker.is_open(now):
            raise PoolUnavailable(f"{self.language} containers cannot be created right now")
        waiter = _Waiter()
        self._waiters.append(waiter)
        if self._creating < len(self._waiters):  # everything under way is promised
            self._start_create()
        self._wake.set()  # the target counts promised creates out: refill behind them
        try:
            await waiter.served.wait()
        except BaseException:
            if waiter.container is None and waiter.error is None:
                self._waiters.remove(waiter)
            elif waiter.container is not None and self._tg is not None:
                self._in_use.discard(waiter.container.id)  # served as it was cancelled:
                self._supply(waiter.container)  # pass it on (a stopped pool's worker reaps it)
            raise
        if waiter.error is not None:
            raise waiter.error
        assert waiter.container is not None
        return waiter.container

    def discard(self, container: Container) -> None:
        """Destroy a used or broken container in the background. Once the pool has stopped
        (a worker cut short: its runs are cancelled with it) the worker's own sweep on the
        way out removes it."""
        if self._tg is None:
            self._in_use.discard(container.id)
            return
        if container.id in self._in_use:
            log.info(
                "%s container %s discarded after use",
                self.language,
                container.id[:12],
                extra=self._event("discarded", container),
            )
            self._in_use.discard(container.id)
            if not self._in_use:
                self._quiet_until = 0.0
                self._wake.set()
        self._tg.start_soon(self._destroy, container)

    def known_ids(self) -> set[str]:
        """Ids of the containers this pool holds or has handed out."""
        return {c.id for c in self._warm} | self._in_use

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep the pool at its target until cancelled; then remove every warm container.
        Started with `TaskGroup.start`, it can hand out containers once that returns."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                tg.start_soon(self._tick)
                while True:
                    self._refill()
                    now = time.monotonic()
                    wait_s = self.breaker.retry_in(now) or TICK_S
                    if self._quiet_until > now:
                        wait_s = min(wait_s, self._quiet_until - now)
                    with anyio.move_on_after(wait_s):
                        await self._wake.wait()
                    self._wake = anyio.Event()
        finally:
            self._tg = None
            while self._waiters:
                self._fail(self._waiters.pop(), "the pool stopped")
            with anyio.CancelScope(shield=True):
                await self._drain()

    def _retarget(self, now: float) -> None:
        target = self.sizer.target(now)
        if target != self.target:
            log.info(
                "pool %s target %d -> %d",
                self.language,
                self.target,
                target,
                extra=self._event("target", previous=self.target, target=target),
            )
            self.target = target
        self._wake.set()

    def stop_refilling(self) -> None:
        """While the worker drains it takes no new job: new warm containers would only compete
        with the runs being finished for the CPU, and the warm ones would only wait to be
        destroyed on the way out, so they go now."""
        self._draining = True
        while self._warm and self._tg is not None:
            container = self._pop_warm()
            self.discard(container)

    def _refill(self) -> None:
        now = time.monotonic()
        if self._tg is None or self._draining or self.breaker.is_open(now):
            return
        if self._warm and now < self._quiet_until:  # a spare is warm: let the program run
            return
        while len(self._warm) + self._creating - len(self._waiters) < self.target:
            self._start_create()

    def _start_create(self) -> None:
        assert self._tg is not None
        self._creating += 1
        self._tg.start_soon(self._refill_one)

    async def _tick(self) -> None:
        """Periodic upkeep: scale down after the hold, recycle stale or outdated containers."""
        while True:
            await anyio.sleep(TICK_S)
            now = time.monotonic()
            self._retarget(now)
            if now - self._image_checked > IMAGE_REFRESH_S:
                await self._refresh_image(now)
            for container in self._to_recycle(now):
                log.info(
                    "recycling warm %s container %s",
                    self.language,
                    container.id[:12],
                    extra=self._event("recycled", container),
                )
                self._warm.remove(container)
                self._watches.pop(container.id).cancel()
                self.discard(container)

    def _to_recycle(self, now: float) -> list[Container]:
        """Oldest first, a few per tick: surplus over target, outdated, older than the TTL."""
        surplus = max(0, len(self._warm) + self._creating - len(self._waiters) - self.target)
        ttl = self._settings.warm_ttl_s
        unwanted = [
            c
            for i, c in enumerate(self._warm)
            if i < surplus or c.image_id != self._image_id or now - c.created_at > ttl
        ]
        return unwanted[:RECYCLE_PER_TICK]

    async def _refresh_image(self, now: float) -> None:
        try:
            self._image_id = await self._engine.image_id(self._image)
            self._image_checked = now
        except EngineError as exc:
            log.warning(
                "cannot inspect image %s: %s",
                self._image,
                exc,
                extra=self._event("image_unknown", image=self._image, error=str(exc)),
            )

    async def _refill_one(self) -> None:
        try:
            try:
                container = await self._create()
            finally:
                self._creating -= 1
        except (EngineError, AgentGone, TimeoutError, OSError) as exc:
            log.error(
                "could not warm a %s container: %s",
                self.language,
                exc,
                extra=self._event("create_failed", error=str(exc)),
            )
            if len(self._waiters) > self._creating:  # the newest was counting on this one
                self._fail(self._waiters.pop(), f"could not create a container: {exc}")
        else:
            self._supply(container)
        finally:
            self._wake.set()

    def _supply(self, container: Container) -> None:
        """A ready container goes to the longest-waiting claimant, else to the warm pool."""
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.container = container
            self._in_use.add(container.id)
            waiter.served.set()
        else:
            self._add_warm(container)

    def _fail(self, waiter: _Waiter, reason: str) -> None:
        waiter.error = PoolUnavailable(f"no {self.language} container: {reason}")
        waiter.served.set()

    def _pop_warm(self) -> Container:
        """The oldest warm container, no longer watched: the caller uses or destroys it."""
        container = self._warm.popleft()
        self._watches.pop(container.id).cancel()
        return container

    def _add_warm(self, container: Container) -> None:
        assert self._tg is not None
        scope = self._watches[container.id] = anyio.CancelScope()
        self._warm.append(container)
        self._tg.start_soon(self._watch, container, scope)

    async def _watch(self, container: Container, scope: anyio.CancelScope) -> None:
        """Drop a warm container the moment it dies, so a claim never sees it."""
        with scope:
            await container.stream.wait_closed()
            log.warning(
                "warm %s container %s died; replacing it",
                self.language,
                container.id[:12],
                extra=self._event("died", container),
            )
            self._warm.remove(container)
            del self._watches[container.id]
            self._wake.set()
            self.discard(container)

    async def _create(self) -> Container:
        """Create, attach, start, and wait for the agent's READY; counted by the breaker."""
        now = time.monotonic()
        if self._image_id is None or now - self._image_checked > IMAGE_REFRESH_S:
            await self._refresh_image(now)
        config = container_config(self.runtime, self._settings)
        async with self._limiter:
            started = time.monotonic()
            try:
                container = await self._start(config)
            except (EngineError, AgentGone, TimeoutError, OSError):
                self.breaker.failure(time.monotonic())
                if self.breaker.tripped:
                    self._log_breaker_open()
                raise
        if self.breaker.tripped:
            log.info(
                "%s creates work again: circuit closed",
                self.language,
                extra=self._event("breaker_closed"),
            )
        self.breaker.success()
        lead_s = time.monotonic() - started
        self.sizer.record_lead_time(lead_s)
        log.info(
            "%s container %s created in %.0f ms",
            self.language,
            container.id[:12],
            lead_s * 1e3,
            extra=self._event("created", container, duration_ms=round(lead_s * 1e3, 1)),
        )
        container.image_id = self._image_id
        return container

    async def _start(self, config: dict[str, object]) -> Container:
        with anyio.CancelScope(shield=True):  # a created container must not lose its id
            container_id = await self._engine.create(config)
        stream = None
        try:
            with anyio.fail_after(READY_TIMEOUT_S):
                stream = await self._engine.attach(container_id)
                container = Container(container_id, self.language, stream)
                await self._engine.start(container_id)
                await container.wait_ready()
            return container
        except BaseException:
            with anyio.CancelScope(shield=True):
                if stream is not None:
                    await stream.aclose()
                await self._engine.remove(container_id)
            raise

    async def _destroy(self, container: Container) -> None:
        """Shielded: a pool that is being cancelled still removes what it started removing."""
        with anyio.CancelScope(shield=True):
            try:
                await container.stream.aclose()
                await self._engine.remove(container.id)
            except EngineError as exc:
                log.error(
                    "could not remove container %s: %s",
                    container.id[:12],
                    exc,
                    extra=self._event("remove_failed", container, error=str(exc)),
                )

    def _event(
        self, event: str, container: Container | None = None, **more: object
    ) -> dict[str, object]:
        """`extra` for a pool event's log line: its structured fields."""
        fields: dict[str, object] = {"language": self.language, "event": event}
        if container is not None:
            fields["container"] = container.id[:12]
        return {"fields": fields | more}

    def _log_breaker_open(self) -> None:
        retry_s = self.breaker.retry_in(time.monotonic())
        log.warning(
            "%s creates failing (%d in a row): circuit open for %.1f s",
            self.language,
            self.breaker.failures,
            retry_s,
            extra=self._event(
                "breaker_open", failures=self.breaker.failures, retry_in_s=round(retry_s, 1)
            ),
        )

    async def _drain(self) -> None:
        while self._warm:
            container = self._pop_warm()
            await self._destroy(container)
