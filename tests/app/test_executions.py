"""The app's store on a Redis of the test's own: refusals as `Refused` with their reason, and
queue depths per language and priority, claimed jobs not counted."""

from __future__ import annotations

import uuid
from typing import Literal

import pytest
from redis.asyncio import Redis

from app.executions import BUSY, SHED, ExecutionStore, Refused
from runtimes import keys, wire
from runtimes.registry import RUNTIMES

pytestmark = pytest.mark.anyio


def _job(priority: Literal["standard", "premium"] = "standard", user: str = "u") -> wire.Job:
    return wire.Job(uuid.uuid4().hex, "python", (), user=user, priority=priority)


async def test_a_refused_submit_says_why(redis: Redis) -> None:
    store = ExecutionStore(redis, ttl_s=60, max_stdin_bytes=10)
    entry = await store.submit(_job(), max_concurrent=1, max_depth=0)
    assert await redis.xrange(keys.job_stream("python"), entry, entry) != []
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
