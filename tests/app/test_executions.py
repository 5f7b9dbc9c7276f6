"""The app's store on a Redis of the test's own: refusals as `Refused` with their reason, and
queue depths per language and priority, claimed jobs not counted."""

from __future__ import annotations

from typing import Literal

import pytest
from redis.asyncio import Redis

from app.executions import BUSY, SHED, ExecutionStore, Refused
from runtimes import keys, wire
from runtimes.registry import RUNTIMES

pytestmark = pytest.mark.anyio


def _job(priority: Literal["standard", "premium"] = "standard", user: str = "u") -> wire.Job:
    return wire.Job(keys.new_execution_id("python"), "python", (), user=user, priority=priority)


async def test_a_refused_submit_says_why(redis: Redis) -> None:
    store = ExecutionStore(redis, ttl_s=60, max_stdin_bytes=10)
    assert await store.submit(_job(), max_concurrent=1, max_depth=0) == 0  # none ahead
    with pytest.raises(Refused) as busy:
        await store.submit(_job(), max_concurrent=1, max_depth=0)
    assert busy.value.reason == BUSY
    with pytest.raises(Refused) as shed:
        await store.submit(_job(user="other"), max_concurrent=1, max_depth=1)
    assert shed.value.reason == SHED
    assert await redis.xlen(keys.job_stream("python")) == 1


async def test_queue_depths_count_unclaimed_jobs_per_language_and_priority(redis: Redis) -> None:
    store = ExecutionStore(redis, ttl_s=60, max_stdin_bytes=10)
    for stream in keys.job_streams("python"):
        await redis.xgroup_create(stream, keys.WORKER_GROUP, id="0", mkstream=True)
    for priority in ("standard", "standard", "standard", "premium"):
        await store.submit(_job(priority), max_concurrent=0, max_depth=0)
    stream = keys.job_stream("python")
    await redis.xreadgroup(keys.WORKER_GROUP, "w", {stream: ">"}, count=1)  # claimed
    depths = await store.queue_depths()
    assert set(depths) == {(lang, p) for lang in RUNTIMES for p in keys.PRIORITIES}
    assert depths[("python", "standard")] == 2
    assert depths[("python", "premium")] == 1
    assert sum(depths.values()) == 3


async def test_a_submit_counts_the_unclaimed_jobs_ahead_of_it(redis: Redis) -> None:
    """Premium jobs are claimed first: a standard job has every unclaimed job of its
    language ahead of it, a premium one only the premium ones."""
    store = ExecutionStore(redis, ttl_s=60, max_stdin_bytes=10)
    for stream in keys.job_streams("python"):
        await redis.xgroup_create(stream, keys.WORKER_GROUP, id="0", mkstream=True)
    aheads = [
        await store.submit(_job(p), max_concurrent=0, max_depth=0)
        for p in ("standard", "standard", "premium", "standard", "premium")
    ]
    assert aheads == [0, 1, 0, 3, 1]
    await redis.xreadgroup(keys.WORKER_GROUP, "w", {keys.job_stream("python"): ">"}, count=2)
    assert await store.submit(_job(), max_concurrent=0, max_depth=0) == 3  # 2 claimed
