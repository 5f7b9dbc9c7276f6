"""The status scripts on a real Redis: one end, stale attempts and duplicates refused."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.transitions import ABORTED_NOW, KILL_SENT, OK, Transitions

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _queued(redis: Redis) -> wire.Job:
    job = wire.Job(uuid.uuid4().hex, "python", (wire.SourceFile("main.py", ""),))
    await redis.hset(keys.execution(job.execution_id), mapping={"status": "queued", "attempt": 0})
    return job


async def test_a_duplicated_entry_cannot_start_the_same_attempt_twice(redis: Redis) -> None:
    t, job = Transitions(redis), await _queued(redis)
    assert await t.advance(job, [Status.PREPARING, Status.RUNNING]) == OK
    assert await t.advance(job, [Status.PREPARING, Status.RUNNING]) == "taken"


async def test_a_superseded_attempt_can_neither_advance_nor_finish(redis: Redis) -> None:
    t, job = Transitions(redis), await _queued(redis)
    assert await t.advance(job, [Status.PREPARING]) == OK
    assert await t.requeue(job) == OK  # its worker was presumed dead
    result = wire.Result(job.execution_id, "python", Status.COMPLETED, 0)
    assert await t.advance(job, [Status.RUNNING]) == "stale"
    assert await t.finish(job.attempt, result, 60) == "stale"
    assert await t.finish(job.attempt + 1, result, 60) == OK


async def test_exactly_one_terminal_status(redis: Redis) -> None:
    t, job = Transitions(redis), await _queued(redis)
    await t.advance(job, [Status.PREPARING, Status.RUNNING])
    assert await t.abort(job.execution_id, "python", 60) == KILL_SENT
    done = wire.Result(job.execution_id, "python", Status.ABORTED)
    assert await t.finish(job.attempt, done, 60) == OK
    late = wire.Result(job.execution_id, "python", Status.COMPLETED, 0)
    assert await t.finish(job.attempt, late, 60) == "aborted"
    assert await t.abort(job.execution_id, "python", 60) == "aborted"


async def test_abort_while_queued_ends_it_at_once(redis: Redis) -> None:
    t, job = Transitions(redis), await _queued(redis)
    assert await t.abort(job.execution_id, "python", 60) == ABORTED_NOW
    assert await t.advance(job, [Status.PREPARING, Status.RUNNING]) == "aborted"


async def test_no_requeue_once_output_reached_a_watcher(redis: Redis) -> None:
    t, job = Transitions(redis), await _queued(redis)
    await t.advance(job, [Status.PREPARING, Status.RUNNING])
    await redis.rpush(keys.output_log(job.execution_id), b"{}")
    assert await t.requeue(job) == "has_output"
