"""Recovery on a real Redis: an execution whose job is in no stream ends `failed`, with the
output that had reached the user (and frees its user's slot); one whose job is still queued
is left alone; a dead worker's jobs of both priorities are taken over."""

from __future__ import annotations

import time
import uuid

import anyio
import pytest
from redis.asyncio import Redis

from poolmgr.queue import CLAIM_IDLE_MS, JobQueue
from poolmgr.recovery import ORPHANED, Recovery
from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.transitions import BUSY, OK, SHED, Transitions

pytestmark = pytest.mark.anyio


async def _recovery(redis: Redis) -> tuple[str, Transitions, JobQueue, Recovery]:
    """A language of the test's own, with a worker's queue and recovery over it."""
    lang = f"l{uuid.uuid4().hex[:6]}"
    t = Transitions(redis)
    queue = JobQueue(redis, f"w-{uuid.uuid4().hex[:6]}", t, 60)
    await queue.ensure_groups([lang])
    return lang, t, queue, Recovery(redis, queue, t, [lang], 60, 1.0, set())


async def test_the_sweeper_ends_only_executions_whose_job_is_gone(redis: Redis) -> None:
    lang, t, queue, recovery = await _recovery(redis)
    long_ago = time.time() - 60
    jobs = [
        wire.Job(uuid.uuid4().hex, lang, (wire.SourceFile("main.py", ""),), enqueued_at=long_ago)
        for _ in range(2)
    ]
    for job in jobs:
        await t.submit(job)
    lost, waiting = jobs
    (entry,) = [e for e in await queue.read([lang]) if e.job == lost]
    assert await t.advance(lost, "w:1", [Status.PREPARING, Status.RUNNING]) == OK
    frame = wire.encode(wire.OutputEvent("stdout", "hi\n", 0))
    assert await t.append(lost, "w:1", 0, [frame], 60) == OK
    await queue.ack(entry)  # acked with no end recorded: what a lost reply used to cause

    assert await recovery.sweep() == 1
    ended = wire.decode_result(await redis.hget(keys.execution(lost.execution_id), "result"))
    assert (ended.status, ended.failure_code, ended.stdout) == (Status.FAILED, ORPHANED, "hi\n")
    assert await redis.hget(keys.execution(waiting.execution_id), "status") == b"queued"
    assert await recovery.sweep() == 0
    assert await redis.zrange(keys.ACTIVE, 0, -1) == [waiting.execution_id.encode()]


async def test_a_backlog_of_older_live_executions_does_not_hide_an_orphan(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("poolmgr.recovery.SWEEP_BATCH", 2)
    lang, t, _, recovery = await _recovery(redis)
    jobs = [
        wire.Job(uuid.uuid4().hex, lang, (wire.SourceFile("main.py", ""),), enqueued_at=at)
        for at in (time.time() - 90, time.time() - 80, time.time() - 70, time.time() - 60)
    ]
    for job in jobs:
        await t.submit(job)
    orphan = jobs[-1]
    entry = await redis.hget(keys.execution(orphan.execution_id), "entry")
    await redis.xdel(keys.job_stream(lang), entry)
    swept = [await recovery.sweep() for _ in range(3)]
    assert sum(swept) == 1
    assert await redis.hget(keys.execution(orphan.execution_id), "status") == b"failed"


async def test_an_orphan_the_sweeper_ends_frees_its_users_slot(redis: Redis) -> None:
    lang, t, _, recovery = await _recovery(redis)
    files = (wire.SourceFile("main.py", ""),)
    orphan = wire.Job(uuid.uuid4().hex, lang, files, enqueued_at=time.time() - 60, user="u")
    await t.submit(orphan, max_concurrent=1)
    entry = await redis.hget(keys.execution(orphan.execution_id), "entry")
    await redis.xdel(keys.job_stream(lang), entry)
    later = wire.Job(uuid.uuid4().hex, lang, files, user="u")
    assert await t.submit(later, max_concurrent=1) == BUSY
    assert await recovery.sweep() == 1
    assert await t.submit(later, max_concurrent=1) not in (BUSY, SHED)


async def test_the_pending_jobs_of_a_dead_worker_are_recovered_on_both_streams(
    redis: Redis,
) -> None:
    lang, t, _, recovery = await _recovery(redis)
    dead = JobQueue(redis, f"dead-{uuid.uuid4().hex[:6]}", t, 60)
    files = (wire.SourceFile("main.py", ""),)
    jobs = [wire.Job(uuid.uuid4().hex, lang, files, priority=p) for p in keys.PRIORITIES]
    for job in jobs:
        await t.submit(job)
    claimed = await dead.read([lang]) + await dead.read([lang])
    assert sorted(e.stream for e in claimed) == sorted(keys.job_streams(lang))
    await anyio.sleep(CLAIM_IDLE_MS / 1000)
    assert await recovery.recover() == 2
    for job in jobs:  # re-queued, each on its own stream, as the next attempt
        record = await redis.hmget(keys.execution(job.execution_id), ["status", "attempt"])
        assert record == [b"queued", b"1"]
        stream = keys.job_stream(lang, job.priority)
        (entry,) = await redis.xrange(stream)
        assert wire.decode_job(entry[1][b"job"]).execution_id == job.execution_id
    await recovery.watch()  # the dead consumer owns nothing now: forgotten on both
    for stream in keys.job_streams(lang):
        names = {r["name"] for r in await redis.xinfo_consumers(stream, keys.WORKER_GROUP)}
        assert dead.worker_id.encode() not in names
