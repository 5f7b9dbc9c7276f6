"""The sweeper on a real Redis: an execution whose job is in no stream ends `failed`, with
the output that had reached the user; one whose job is still queued is left alone."""

from __future__ import annotations

import time
import uuid

import pytest
from redis.asyncio import Redis

from poolmgr.queue import JobQueue
from poolmgr.recovery import ORPHANED, Recovery
from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.transitions import OK, Transitions

pytestmark = pytest.mark.anyio


async def test_the_sweeper_ends_only_executions_whose_job_is_gone(redis: Redis) -> None:
    lang = f"s{uuid.uuid4().hex[:6]}"
    t = Transitions(redis)
    queue = JobQueue(redis, f"w-{uuid.uuid4().hex[:6]}", t, 60)
    await queue.ensure_groups([lang])
    recovery = Recovery(redis, queue, t, [lang], 60, 1.0, set())
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
    lang = f"b{uuid.uuid4().hex[:6]}"
    t = Transitions(redis)
    queue = JobQueue(redis, f"w-{uuid.uuid4().hex[:6]}", t, 60)
    await queue.ensure_groups([lang])
    recovery = Recovery(redis, queue, t, [lang], 60, 1.0, set())
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
