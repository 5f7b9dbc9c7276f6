"""Removes containers whose worker is gone: its heartbeat expired, or it is this worker's past."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable

import anyio
from redis.asyncio import Redis

from poolmgr import heartbeat
from poolmgr.engine import Engine
from poolmgr.engine_errors import EngineError
from poolmgr.periodic import every
from poolmgr.sandbox import LABEL_CLUSTER, LABEL_WORKER

log = logging.getLogger(__name__)

REAP_OWN_TRIES = 2
REAP_OWN_RETRY_S = 0.5
REAP_OWN_LIMIT_S = 10.0
STRAY_AGE_S = 120.0  # well past the longest create: a younger unknown one may still be arriving


class Reaper:
    """Any worker reaps for all: orphans of a `kill -9`-ed worker do not outlive its heartbeat.

    Only containers of this cluster (workers sharing this Redis) are considered, so two
    deployments on one engine never reap each other's containers.
    """

    def __init__(
        self,
        engine: Engine,
        redis: Redis,
        worker_id: str,
        cluster: str,
        interval_s: float,
        known: Callable[[], set[str]],
    ) -> None:
        """`known`: the ids of the containers this worker's pools hold or have handed out."""
        self._engine = engine
        self._redis = redis
        self._worker_id = worker_id
        self._cluster = cluster
        self._interval = interval_s
        self._known = known

    async def run(self) -> None:
        await every(self._interval, "reaper", self.reap)

    async def reap(self) -> None:
        await self.reap_dead()
        await self.reap_strays()

    async def reap_strays(self, min_age_s: float = STRAY_AGE_S) -> int:
        """Remove this worker's containers that no pool knows, such as one whose create
        timed out here but completed in the engine; returns how many."""
        created = await self._engine.list_created({LABEL_WORKER: self._worker_id})
        horizon, known = time.time() - min_age_s, self._known()
        strays = [c for c, at in created.items() if c not in known and at < horizon]
        for container_id in strays:
            log.warning("removing stray container %s of this worker", container_id[:12])
            await self._engine.remove(container_id)
        return len(strays)

    async def reap_dead(self) -> int:
        """Remove every container of a worker without a live heartbeat; returns how many."""
        owners: dict[str, list[str]] = defaultdict(list)
        mine = await self._engine.list_labelled({LABEL_CLUSTER: self._cluster})
        for container_id, labels in mine.items():
            owners[labels.get(LABEL_WORKER, "")].append(container_id)
        others = [w for w in owners if w != self._worker_id]
        dead = [w for w, ok in (await heartbeat.alive(self._redis, others)).items() if not ok]
        for worker in dead:
            log.warning("reaping %d containers of dead worker %s", len(owners[worker]), worker)
            for container_id in owners[worker]:
                await self._engine.remove(container_id)
        return sum(len(owners[w]) for w in dead)

    async def reap_own(self) -> None:
        """Leftovers of this worker id (from an earlier life: a restarted pod keeps its name).

        An engine that is down is not fatal: the worker waits for it like for any failure.
        This runs last on the way out, when nothing else would remove them: removals run
        side by side (one that hangs does not hold up the rest), each failed one gets a
        second try, and all of it is bounded so that a hung engine cannot eat the grace.
        """
        failed: list[str] = []
        errors: list[EngineError] = []

        async def remove(container_id: str) -> None:
            try:
                await self._engine.remove(container_id)
            except EngineError as exc:
                failed.append(container_id)
                errors.append(exc)

        with anyio.move_on_after(REAP_OWN_LIMIT_S):
            try:
                failed = await self._engine.list_ids({LABEL_WORKER: self._worker_id})
            except EngineError as exc:
                log.warning("cannot reap this worker's containers: %s", exc)
                return
            for attempt in range(REAP_OWN_TRIES):
                if attempt:
                    await anyio.sleep(REAP_OWN_RETRY_S)
                leftovers, failed = failed, []
                async with anyio.create_task_group() as tg:
                    for container_id in leftovers:
                        tg.start_soon(remove, container_id)
                if not failed:
                    return
        log.warning(
            "cannot remove this worker's containers: %s",
            errors[-1] if errors else f"no answer in {REAP_OWN_LIMIT_S:g} s",
        )
