"""The warm pool against a real Docker engine: fill, claim, refill, cold start, never reuse."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import docker
import pytest
from redis.asyncio import Redis

from poolmgr.engine import Engine
from poolmgr.executor import Executor
from poolmgr.pool import REFILL_DEFER_S, Pool, PoolUnavailable
from poolmgr.publisher import ExecutionPublisher
from poolmgr.reaper import Reaper
from poolmgr.sandbox import LABEL_WORKER, container_config
from runtimes import keys, wire
from runtimes.registry import RUNTIMES
from runtimes.settings import PoolPolicy, Settings
from runtimes.transitions import Transitions

pytestmark = pytest.mark.anyio


async def _until(condition: Callable[[], bool], limit_s: float = 20) -> None:
    """Poll: the pool has no event for tests to wait on, by design."""
    with anyio.fail_after(limit_s):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.02)


@asynccontextmanager
async def running_pool(
    size: int, creates: int = 2, **overrides: Any
) -> AsyncIterator[tuple[Pool, Engine, Settings]]:
    """A pool of `size` for python, `creates` at a time, with its own worker id, checked empty
    after it stops."""
    policy = PoolPolicy(min=size, max=size)
    settings = Settings(
        worker_id=f"test-pool-{uuid.uuid4().hex[:8]}", pool_policies={"python": policy}, **overrides
    )
    async with Engine(settings.docker_url) as engine:
        pool = Pool(RUNTIMES["python"], engine, settings, anyio.CapacityLimiter(creates))
        async with anyio.create_task_group() as tg:
            await tg.start(pool.run)
            yield pool, engine, settings
            tg.cancel_scope.cancel()
        assert await engine.list_ids({LABEL_WORKER: settings.worker_id}) == []


async def test_pool_fills_and_refills_after_a_claim() -> None:
    async with running_pool(2) as (pool, engine, settings):
        await _until(lambda: pool.warm == 2)
        first = pool.claim()
        assert first is not None and first.alive
        assert pool.warm == 1
        await _until(lambda: pool.warm == 2)
        second = pool.claim()
        assert second is not None and second.id != first.id
        for used in (first, second):
            pool.discard(used)
        await _until(lambda: pool.warm == 2)
        ids = await engine.list_ids({LABEL_WORKER: settings.worker_id})
        assert first.id not in ids and second.id not in ids, "a used container must be destroyed"


async def test_a_refill_waits_while_a_spare_is_warm_and_the_program_runs() -> None:
    async with running_pool(2) as (pool, _, _):
        await _until(lambda: pool.warm == 2)
        claimed = pool.claim()
        assert claimed is not None
        await anyio.sleep(REFILL_DEFER_S / 2)
        assert (pool.warm, pool._creating) == (1, 0), "the refill competes with the program"
        pool.discard(claimed)  # the execution ended: refill now
        await _until(lambda: pool._creating == 1 or pool.warm == 2, 1)
        await _until(lambda: pool.warm == 2)


async def test_a_claim_that_empties_the_pool_refills_at_once() -> None:
    async with running_pool(1) as (pool, _, _):
        await _until(lambda: pool.warm == 1)
        claimed = pool.claim()
        assert claimed is not None
        await _until(lambda: pool._creating == 1, REFILL_DEFER_S / 2)
        pool.discard(claimed)


async def test_stray_containers_of_this_worker_are_reaped(redis_url: str) -> None:
    async with running_pool(1) as (pool, engine, settings):
        await _until(lambda: pool.warm == 1)
        stray = await engine.create(container_config(RUNTIMES["python"], settings))
        redis = Redis.from_url(redis_url)
        try:
            reaper = Reaper(engine, redis, settings.worker_id, "", 1.0, pool.known_ids)
            assert await reaper.reap_strays(min_age_s=60) == 0  # it may still be arriving
            assert await reaper.reap_strays(min_age_s=0) == 1
        finally:
            await redis.aclose()
        remaining = await engine.list_ids({LABEL_WORKER: settings.worker_id})
        assert stray not in remaining and pool.known_ids() <= set(remaining)


async def test_empty_pool_claims_nothing_and_cold_starts() -> None:
    async with running_pool(0) as (pool, _, _):
        assert pool.claim() is None
        container = await pool.cold_start()
        assert container.alive
        pool.discard(container)


async def test_a_claimant_takes_a_container_that_became_warm_while_it_got_ready_to_wait() -> None:
    async with running_pool(1) as (pool, _, _):
        await _until(lambda: pool.warm == 1)
        ready = pool._warm[0].id
        container = await pool.cold_start()  # its claim() found none, one await ago
        pool.discard(container)
    assert container.id == ready


async def test_a_draining_pool_destroys_its_warm_containers_and_stops_refilling() -> None:
    async with running_pool(2) as (pool, engine, settings):
        await _until(lambda: pool.warm == 2)
        pool.stop_refilling()
        assert (pool.warm, pool.accepting, pool.serviceable) == (0, False, True)
        with anyio.fail_after(10):  # destroyed now, not when the drain ends
            while await engine.list_ids({LABEL_WORKER: settings.worker_id}):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        assert pool._creating == 0  # and no refill started


async def test_a_claimant_takes_the_create_already_under_way() -> None:
    """Creates are one at a time here: a claimant that started its own create would wait
    for the refill's to finish first, and find that container warm, unused, on return."""
    async with running_pool(1, creates=1) as (pool, _, _):
        await _until(lambda: pool._limiter.borrowed_tokens == 1)  # the refill is creating
        assert pool.claim() is None
        container = await pool.cold_start()
        warm_on_return = pool.warm
        pool.discard(container)
    assert warm_on_return == 0


async def test_a_claimant_cancelled_while_waiting_leaves_its_container_to_the_pool() -> None:
    async with running_pool(0) as (pool, _, _):
        with anyio.move_on_after(0.01):
            await pool.cold_start()
        assert not pool._waiters
        await _until(lambda: pool._creating == 0)
        assert not pool._in_use  # the create it started went warm (then recycled), not lost


async def test_a_claimant_waiting_on_a_failing_create_is_told_not_left_waiting() -> None:
    settings = Settings(worker_id=f"test-pool-{uuid.uuid4().hex[:8]}", image_prefix="no-such-image")
    async with Engine(settings.docker_url) as engine, anyio.create_task_group() as tg:
        pool = Pool(RUNTIMES["python"], engine, settings, anyio.CapacityLimiter(2))
        await tg.start(pool.run)
        with anyio.fail_after(10), pytest.raises(PoolUnavailable, match="could not create"):
            await pool.cold_start()
        tg.cancel_scope.cancel()


async def test_a_warm_container_that_died_is_never_handed_out() -> None:
    async with running_pool(1) as (pool, engine, _):
        await _until(lambda: pool.warm == 1)
        victim = pool._warm[0]
        await engine.remove(victim.id)  # killed behind the pool's back
        await _until(lambda: not victim.alive)
        claimed = pool.claim()
        assert claimed is None or claimed.id != victim.id
        if claimed is not None:
            pool.discard(claimed)


async def _execute(pool: Pool, engine: Engine, redis_url: str, code: str) -> wire.Result:
    redis = Redis.from_url(redis_url)
    try:
        job = wire.Job(uuid.uuid4().hex, "python", (wire.SourceFile("main.py", code),))
        transitions = Transitions(redis)
        # Only the record: the session's server serves python and would take a queued job.
        key = keys.execution(job.execution_id)
        await redis.hset(key, mapping={"status": "queued", "attempt": 0, "language": "python"})
        executor = Executor(engine, {"python": pool}, redis, 1 << 20, compile_timeout_s=20)
        publisher = ExecutionPublisher(redis, transitions, job, "test:1-0", ttl_s=60)
        result = await executor.execute(job, publisher, time.monotonic())
        assert result is not None
        return result
    finally:
        await redis.aclose()


async def test_executor_uses_the_warm_path_when_warm(redis_url: str) -> None:
    async with running_pool(1) as (pool, engine, _):
        await _until(lambda: pool.warm == 1)
        result = await _execute(pool, engine, redis_url, "print('warm')")
    assert (result.start, result.stdout, result.exit_code) == ("warm", "warm\n", 0)


async def test_executor_cold_starts_when_the_pool_is_empty(redis_url: str) -> None:
    async with running_pool(0) as (pool, engine, _):
        result = await _execute(pool, engine, redis_url, "print('cold')")
    assert (result.start, result.stdout, result.exit_code) == ("cold", "cold\n", 0)


async def test_concurrent_claims_never_share_a_container() -> None:
    async with running_pool(3) as (pool, _, _):
        await _until(lambda: pool.warm == 3)
        got: list[str] = []

        async def claim_or_start() -> None:
            container = pool.claim() or await pool.cold_start()
            got.append(container.id)
            pool.discard(container)

        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(claim_or_start)
        assert len(got) == 6 and len(set(got)) == 6


async def test_stale_warm_containers_are_recycled() -> None:
    async with running_pool(1, warm_ttl_s=1.0) as (pool, _, _):
        await _until(lambda: pool.warm == 1)
        first = pool._warm[0].id
        await _until(lambda: pool.warm == 1 and pool._warm[0].id != first, limit_s=10)


async def test_a_container_of_an_outdated_image_is_never_handed_out() -> None:
    async with running_pool(1) as (pool, _, _):
        await _until(lambda: pool.warm == 1)
        stale = pool._warm[0]
        pool._image_id = "sha256:a-newer-build"  # as if `coderunner images build` just ran
        assert pool.claim() is None
        assert stale.id not in [c.id for c in pool._warm]


async def test_failing_creates_open_the_circuit() -> None:
    settings = Settings(worker_id=f"test-pool-{uuid.uuid4().hex[:8]}", image_prefix="no-such-image")
    async with Engine(settings.docker_url) as engine, anyio.create_task_group() as tg:
        pool = Pool(RUNTIMES["python"], engine, settings, anyio.CapacityLimiter(2))
        await tg.start(pool.run)
        await _until(lambda: not pool.accepting)
        with pytest.raises(PoolUnavailable):
            await pool.cold_start()
        tg.cancel_scope.cancel()


def _gvisor_registered() -> bool:
    client = docker.from_env()
    try:
        return "runsc" in client.info().get("Runtimes", {})
    finally:
        client.close()


@pytest.mark.skipif(not _gvisor_registered(), reason="runsc is not registered with the engine")
async def test_gvisor_sandbox_runs_python_under_its_own_kernel(redis_url: str) -> None:
    code = "import os\nprint(os.uname().release, os.getuid())"
    async with running_pool(0, container_runtimes={"python": "runsc"}) as (pool, engine, _):
        result = await _execute(pool, engine, redis_url, code)
    assert result.status == "completed", result
    assert result.stdout == "4.4.0 10001\n"  # gVisor's kernel, the unprivileged user
