"""Recovery on a real Redis: an execution whose job is in no stream ends `failed`, with the
output that had reached the user (and frees its user's slot); one whose job is still queued
is left alone, until it has waited `max_queue_s` (a language no worker serves); a dead
worker's jobs of both priorities are taken over."""

from __future__ import annotations

import time
import uuid
from typing import cast

import anyio
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from poolmgr.queue import CLAIM_IDLE_MS, JobQueue
from poolmgr.recovery import ORPHANED, QUEUE_TIMEOUT, Recovery
from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.settings import Settings
from runtimes.transitions import BUSY, ENDED_NOW, OK, SHED, Transitions

pytestmark = pytest.mark.anyio


async def _recovery(redis: Redis) -> tuple[str, Transitions, JobQueue, Recovery]:
    """A worker's queue and recovery over python, on the test's own Redis."""
    lang = "python"
    t = Transitions(redis)
    queue = JobQueue(redis, f"w-{uuid.uuid4().hex[:6]}", t, 60)
    await queue.ensure_groups([lang])
    return lang, t, queue, Recovery(redis, queue, t, [lang], 60, 1.0, set())


async def test_the_sweeper_ends_only_executions_whose_job_is_gone(redis: Redis) -> None:
    lang, t, queue, recovery = await _recovery(redis)
    long_ago = time.time() - 60
    jobs = [
        wire.Job(
            keys.new_execution_id(lang),
            lang,
            (wire.SourceFile("main.py", ""),),
            enqueued_at=long_ago,
        )
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
    assert await redis.zrange(keys.active(lang), 0, -1) == [waiting.execution_id.encode()]


async def test_a_backlog_of_older_live_executions_does_not_hide_an_orphan(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("poolmgr.recovery.SWEEP_BATCH", 2)
    lang, t, _, recovery = await _recovery(redis)
    jobs = [
        wire.Job(
            keys.new_execution_id(lang), lang, (wire.SourceFile("main.py", ""),), enqueued_at=at
        )
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
    orphan = wire.Job(
        keys.new_execution_id(lang), lang, files, enqueued_at=time.time() - 60, user="u"
    )
    await t.submit(orphan, max_concurrent=1)
    entry = await redis.hget(keys.execution(orphan.execution_id), "entry")
    await redis.xdel(keys.job_stream(lang), entry)
    later = wire.Job(keys.new_execution_id(lang), lang, files, user="u")
    assert await t.submit(later, max_concurrent=1) == BUSY
    assert await recovery.sweep() == 1
    assert await t.submit(later, max_concurrent=1) not in (BUSY, SHED)


async def test_the_pending_jobs_of_a_dead_worker_are_recovered_on_both_streams(
    redis: Redis,
) -> None:
    lang, t, _, recovery = await _recovery(redis)
    dead = JobQueue(redis, f"dead-{uuid.uuid4().hex[:6]}", t, 60)
    files = (wire.SourceFile("main.py", ""),)
    jobs = [wire.Job(keys.new_execution_id(lang), lang, files, priority=p) for p in keys.PRIORITIES]
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


async def _next_message(pubsub: PubSub) -> bytes:
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
    assert message is not None
    return cast(bytes, message["data"])


async def test_a_job_no_worker_serves_ends_once_queued_too_long(redis: Redis) -> None:
    """Any worker's sweeper ends it, whatever languages it serves: `failed`, queue_timeout,
    its entry gone, its exit published, its user's slot free again."""
    _, t, _, recovery = await _recovery(redis)
    nobody = "bash"  # no worker reads it: its stream has no group
    files = (wire.SourceFile("main.py", ""),)
    long_ago = time.time() - Settings().max_queue_s - 1
    job = wire.Job(keys.new_execution_id(nobody), nobody, files, enqueued_at=long_ago, user="u")
    assert await t.submit(job, max_concurrent=1) not in (BUSY, SHED)
    later = wire.Job(
        keys.new_execution_id(nobody), nobody, files, enqueued_at=time.time(), user="u"
    )
    assert await t.submit(later, max_concurrent=1) == BUSY
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.events(job.execution_id))
    confirmed = await pubsub.get_message(timeout=1)  # subscribed before the sweep
    assert confirmed is not None and confirmed["type"] == "subscribe"

    assert await recovery.sweep() == 1
    raw = await redis.hget(keys.execution(job.execution_id), "result")
    ended = wire.decode_result(raw)
    assert (ended.status, ended.failure_code) == (Status.FAILED, QUEUE_TIMEOUT)
    assert await redis.hget(keys.execution(job.execution_id), "status") == b"failed"
    exit_event = wire.decode_event(await _next_message(pubsub))
    assert isinstance(exit_event, wire.ExitEvent)
    assert (exit_event.status, exit_event.failure_code) == (Status.FAILED, QUEUE_TIMEOUT)
    await pubsub.aclose()
    assert await redis.xlen(keys.job_stream(nobody)) == 0
    assert await redis.zscore(keys.active(nobody), job.execution_id) is None
    assert await redis.ttl(keys.execution(job.execution_id)) > 0
    assert await t.submit(later, max_concurrent=1) not in (BUSY, SHED)
    assert await recovery.sweep() == 0
    # A re-sent end (its reply lost) recognises its own; another finisher does not.
    token = f"{recovery._queue.worker_id}:queue-timeout"
    assert await t.end_queued(ended, token, 60) == ENDED_NOW
    assert await t.end_queued(ended, "someone:else", 60) == "failed"


async def test_only_queued_executions_past_the_limit_are_ended(redis: Redis) -> None:
    """One queued for less than the limit, and one a worker runs (accepted long ago), are
    left alone; a limit below the sweeper's usual age is honoured."""
    lang, t, queue, _ = await _recovery(redis)
    recovery = Recovery(redis, queue, t, [lang], 60, 1.0, set(), max_queue_s=5)
    files = (wire.SourceFile("main.py", ""),)
    now = time.time()
    running = wire.Job(keys.new_execution_id(lang), lang, files, enqueued_at=now - 3600)
    recent = wire.Job(keys.new_execution_id(lang), lang, files, enqueued_at=now - 2)
    late = wire.Job(keys.new_execution_id(lang), lang, files, enqueued_at=now - 6)
    await t.submit(running)
    (entry,) = await queue.read([lang])
    assert entry.job == running
    assert await t.advance(running, "w:1", [Status.PREPARING, Status.RUNNING]) == OK
    for job in (recent, late):
        await t.submit(job)

    assert await recovery.sweep() == 1
    statuses = [
        await redis.hget(keys.execution(job.execution_id), "status")
        for job in (running, recent, late)
    ]
    assert statuses == [b"running", b"queued", b"failed"]
    left = await redis.xrange(keys.job_stream(lang), "-", "+")
    assert [wire.decode_job(fields[b"job"]) for _, fields in left] == [running, recent]
    assert await redis.zrange(keys.active(lang), 0, -1) == [
        running.execution_id.encode(),
        recent.execution_id.encode(),
    ]
