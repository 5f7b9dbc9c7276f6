"""The job streams on a real Redis: several languages per read, retries that cannot double,
jobs from a newer app, and dead consumers forgotten only once they own nothing."""

from __future__ import annotations

import uuid

import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from poolmgr.queue import INVALID_JOB, JobQueue
from runtimes import keys, wire
from runtimes.transitions import Transitions

pytestmark = pytest.mark.anyio


@pytest.fixture
def redis(shared_redis: Redis) -> Redis:
    return shared_redis


def _job(language: str) -> wire.Job:
    return wire.Job(uuid.uuid4().hex, language, (wire.SourceFile("main.py", "print(1)"),))


async def _queue(redis: Redis, *languages: str) -> JobQueue:
    """A queue of a fresh worker id over fresh streams (names unique to this test)."""
    queue = JobQueue(redis, f"w-{uuid.uuid4().hex[:6]}", Transitions(redis), 60)
    await queue.ensure_groups(list(languages))
    return queue


async def test_one_read_returns_a_job_of_every_busy_language(redis: Redis) -> None:
    a, b = f"a{uuid.uuid4().hex[:6]}", f"b{uuid.uuid4().hex[:6]}"
    queue, t = await _queue(redis, a, b), Transitions(redis)
    jobs = [_job(a), _job(a), _job(b)]
    for job in jobs:
        await t.submit(job)
    first = await queue.read([a, b])
    assert sorted(e.job.language for e in first) == sorted([a, b])
    second = await queue.read([a, b])
    assert {e.job.execution_id for e in first + second} == {j.execution_id for j in jobs}


async def test_a_resent_retry_queues_the_job_once(redis: Redis) -> None:
    lang = f"r{uuid.uuid4().hex[:6]}"
    queue, t = await _queue(redis, lang), Transitions(redis)
    job = _job(lang)
    await t.submit(job)
    (entry,) = await queue.read([lang])
    await queue.retry(entry)
    await queue.retry(entry)  # the first reply was lost
    entries = await redis.xrange(keys.job_stream(lang))
    assert len(entries) == 1
    new_id, fields = entries[0]
    assert wire.decode_job(fields[b"job"]).attempt == 1
    assert await redis.hget(keys.execution(job.execution_id), "entry") == new_id


async def test_a_job_with_an_unknown_field_runs(redis: Redis) -> None:
    lang = f"n{uuid.uuid4().hex[:6]}"
    queue = await _queue(redis, lang)
    job = _job(lang)
    newer = {**orjson.loads(wire.encode(job)), "region": "eu-west"}
    await redis.xadd(keys.job_stream(lang), {"job": orjson.dumps(newer)})
    (entry,) = await queue.read([lang])
    assert entry.job == job


async def test_an_undecodable_job_that_names_its_execution_ends_it(redis: Redis) -> None:
    lang = f"u{uuid.uuid4().hex[:6]}"
    queue, t = await _queue(redis, lang), Transitions(redis)
    job = _job(lang)
    await t.submit(job)
    broken = {**orjson.loads(wire.encode(job)), "files": "not a list"}
    await redis.xadd(keys.job_stream(lang), {"job": orjson.dumps(broken)})
    await redis.xdel(
        keys.job_stream(lang), (await redis.hget(keys.execution(job.execution_id), "entry"))
    )
    assert await queue.read([lang]) == []
    raw = await redis.hget(keys.execution(job.execution_id), "result")
    result = wire.decode_result(raw)
    assert (result.status, result.failure_code) == ("failed", INVALID_JOB)
    assert await redis.xlen(keys.job_stream(lang)) == 0


async def test_only_dead_consumers_that_own_nothing_are_forgotten(redis: Redis) -> None:
    lang = f"c{uuid.uuid4().hex[:6]}"
    t = Transitions(redis)
    dead_idle, dead_busy, live = [await _queue(redis, lang) for _ in range(3)]
    for queue in (dead_idle, dead_busy, live):
        await t.submit(_job(lang))
        (entry,) = await queue.read([lang])
        if queue is not dead_busy:
            await queue.ack(entry)
    await redis.set(keys.worker_heartbeat(live.worker_id), "1", ex=30)
    survivor = await _queue(redis, lang)
    assert await survivor.forget_dead_consumers(lang) == [dead_idle.worker_id]
    names = {
        row["name"].decode()
        for row in await redis.xinfo_consumers(keys.job_stream(lang), keys.WORKER_GROUP)
    }
    assert names == {dead_busy.worker_id, live.worker_id}


async def test_a_retry_of_an_entry_already_gone_leaves_nothing_pending(redis: Redis) -> None:
    lang = f"g{uuid.uuid4().hex[:6]}"
    queue, t = await _queue(redis, lang), Transitions(redis)
    job = _job(lang)
    await t.submit(job)
    (entry,) = await queue.read([lang])
    await redis.xdel(keys.job_stream(lang), entry.entry_id)  # aborted while it was being read
    await queue.retry(entry)
    assert await redis.xlen(keys.job_stream(lang)) == 0
    pending = await redis.xpending(keys.job_stream(lang), keys.WORKER_GROUP)
    assert pending["pending"] == 0


async def test_a_redis_error_in_the_clusters_wait_reaches_the_caller_as_itself(
    redis: Redis,
) -> None:
    """On a cluster the idle wait is one XREAD per language side by side; a failure of one
    must be the RedisError the consumer handles (a retry), not a group that ends it."""
    a, b = f"a{uuid.uuid4().hex[:6]}", f"b{uuid.uuid4().hex[:6]}"
    queue = JobQueue(redis, f"w-{uuid.uuid4().hex[:6]}", Transitions(redis), 60, sharded=True)
    await queue.ensure_groups([a])
    await redis.set(keys.job_stream(b), "not a stream")  # its XREAD fails: WRONGTYPE
    try:
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await queue.read([a], waited=[a, b])
    finally:
        await redis.delete(keys.job_stream(b))
