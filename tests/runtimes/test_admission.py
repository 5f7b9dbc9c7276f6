"""Admission in the submit script, on a Redis of the test's own: the per-user cap (a slot
held exactly while its execution has not ended) and shedding by the language's unclaimed
depth (premium shed only at twice the limit), with priorities on their own streams."""

from __future__ import annotations

import time
from typing import Literal

import pytest
from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError

from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.transitions import (
    ABORTED_NOW,
    ALIVE,
    BUSY,
    OK,
    ORPHAN,
    RESERVATION_GRACE_S,
    SHED,
    SUBMIT_LATE_S,
    Transitions,
)

pytestmark = pytest.mark.anyio

LANG = "python"
Priority = Literal["standard", "premium"]


def _job(user: str = "alice", priority: Priority = "standard") -> wire.Job:
    files = (wire.SourceFile("main.py", ""),)
    return wire.Job(keys.new_execution_id(LANG), LANG, files, user=user, priority=priority)


async def _admitted(t: Transitions, job: wire.Job, cap: int = 0, depth: int = 0) -> str:
    reply = await t.submit(job, max_concurrent=cap, max_depth=depth)
    assert reply not in (BUSY, SHED), reply
    return reply


async def _groups(redis: Redis) -> None:
    for stream in keys.job_streams(LANG):
        await redis.xgroup_create(stream, keys.WORKER_GROUP, id="0", mkstream=True)


async def test_a_user_at_the_cap_is_busy_and_nothing_is_queued(redis: Redis) -> None:
    t = Transitions(redis)
    for _ in range(2):
        await _admitted(t, _job(), cap=2)
    refused = _job()
    assert await t.submit(refused, max_concurrent=2) == BUSY
    assert await redis.exists(keys.execution(refused.execution_id)) == 0
    assert await redis.zscore(keys.active(LANG), refused.execution_id) is None
    assert await redis.xlen(keys.job_stream(LANG)) == 2
    assert await redis.zcard(keys.user_active("alice")) == 2
    await _admitted(t, _job(user="bob"), cap=2)  # another user has slots of their own
    await _admitted(t, _job(), cap=3)
    for _ in range(3):
        await _admitted(t, _job(), cap=0)  # 0: no cap
    assert await redis.zcard(keys.user_active("alice")) == 3


async def test_a_slot_is_freed_when_its_execution_finishes(redis: Redis) -> None:
    t, job = Transitions(redis), _job()
    await _admitted(t, job, cap=1)
    assert await t.submit(_job(), max_concurrent=1) == BUSY
    assert await t.advance(job, "w:1", [Status.PREPARING, Status.RUNNING]) == OK
    assert await t.submit(_job(), max_concurrent=1) == BUSY  # running holds it
    done = wire.Result(job.execution_id, LANG, Status.COMPLETED, 0)
    assert await t.finish(job.attempt, "w:1", done, 60) == OK
    after = _job()
    await _admitted(t, after, cap=1)
    assert await redis.zrange(keys.user_active("alice"), 0, -1) == [after.execution_id.encode()]


async def test_a_slot_is_freed_when_its_execution_is_aborted(redis: Redis) -> None:
    t, job = Transitions(redis), _job()
    await _admitted(t, job, cap=1)
    assert await t.submit(_job(), max_concurrent=1) == BUSY
    assert await t.abort(job.execution_id, LANG, 60) == ABORTED_NOW
    await _admitted(t, _job(), cap=1)


async def test_a_slot_of_an_expired_execution_is_freed(redis: Redis) -> None:
    t, job = Transitions(redis), _job()
    await _admitted(t, job, cap=1)
    await redis.delete(keys.execution(job.execution_id))
    assert await t.submit(_job(), max_concurrent=1) == BUSY  # no record yet: being submitted?
    await redis.zadd(keys.user_active("alice"), {job.execution_id: 0})  # no: taken long ago
    await _admitted(t, _job(), cap=1)


async def test_a_slot_whose_submit_was_lost_is_freed_after_the_grace(redis: Redis) -> None:
    """The app died between taking the slot and queueing the job: no record ever comes."""
    t, lost = Transitions(redis), _job()
    old = time.time() - RESERVATION_GRACE_S - 1
    await redis.zadd(keys.user_active("alice"), {lost.execution_id: old})
    await _admitted(t, _job(), cap=1)
    assert await redis.zscore(keys.user_active("alice"), lost.execution_id) is None


async def test_a_resent_submit_at_the_cap_answers_its_entry(redis: Redis) -> None:
    t, first, second = Transitions(redis), _job(), _job()
    entry = await _admitted(t, first, cap=2)
    await _admitted(t, second, cap=2)
    assert await t.submit(first, max_concurrent=2, max_depth=1) == entry  # its reply was lost
    assert await redis.xlen(keys.job_stream(LANG)) == 2
    assert await redis.zcard(keys.user_active("alice")) == 2


async def test_standard_jobs_are_shed_at_the_depth_limit_premium_at_twice(
    redis: Redis,
) -> None:
    t = Transitions(redis)
    for _ in range(3):  # no worker has made the groups yet: every entry waits
        await _admitted(t, _job(), depth=3)
    assert await t.submit(_job(), max_depth=3) == SHED
    for _ in range(3):
        await _admitted(t, _job(priority="premium"), depth=3)
    assert await t.submit(_job(priority="premium"), max_depth=3) == SHED
    assert await t.submit(_job(), max_depth=0) not in (BUSY, SHED)  # 0: never shed
    assert await redis.xlen(keys.job_stream(LANG)) == 4
    assert await redis.xlen(keys.job_stream(LANG, "premium")) == 3


async def test_claimed_jobs_do_not_count_toward_the_depth(redis: Redis) -> None:
    t = Transitions(redis)
    await _groups(redis)
    for priority in ("standard", "premium", "premium"):
        await _admitted(t, _job(priority=priority), depth=3)
    assert await t.submit(_job(), max_depth=3) == SHED
    streams = {stream: ">" for stream in keys.job_streams(LANG)}
    await redis.xreadgroup(keys.WORKER_GROUP, "w", streams, count=1)  # one of each claimed
    await _admitted(t, _job(), depth=3)
    await _admitted(t, _job(), depth=3)
    assert await t.submit(_job(), max_depth=3) == SHED


async def test_a_job_goes_to_its_priority_stream_and_its_record_says_so(redis: Redis) -> None:
    t, job = Transitions(redis), _job(user="carol", priority="premium")
    entry = await _admitted(t, job)
    assert await redis.xrange(keys.job_stream(LANG, "premium"), entry, entry) != []
    assert await redis.xlen(keys.job_stream(LANG)) == 0
    record = await redis.hmget(keys.execution(job.execution_id), ["user", "priority", "stream"])
    assert record == [b"carol", b"premium", keys.job_stream(LANG, "premium").encode()]


async def test_abort_and_sweep_act_on_the_stream_of_the_job(redis: Redis) -> None:
    t, job, other = Transitions(redis), _job(priority="premium"), _job(priority="premium")
    entry = await _admitted(t, job)
    await _admitted(t, other)
    # An entry of the same id on the standard stream (ids are per stream) is not its job.
    await redis.xadd(keys.job_stream(LANG), {"job": b"{}"}, id=entry)
    assert await t.sweep(job.execution_id, LANG) == (ALIVE, 0)
    assert await t.abort(job.execution_id, LANG, 60) == ABORTED_NOW
    assert await redis.xrange(keys.job_stream(LANG, "premium"), entry, entry) == []
    assert await redis.xrange(keys.job_stream(LANG), entry, entry) != []
    other_entry = await redis.hget(keys.execution(other.execution_id), "entry")
    await redis.xdel(keys.job_stream(LANG, "premium"), other_entry)
    assert await t.sweep(other.execution_id, LANG) == (ORPHAN, 0)


async def test_a_record_from_before_priorities_is_on_the_standard_stream(redis: Redis) -> None:
    t, job = Transitions(redis), _job()
    entry = await _admitted(t, job)
    await redis.hdel(keys.execution(job.execution_id), "stream")
    assert await t.sweep(job.execution_id, LANG) == (ALIVE, 0)
    assert await t.abort(job.execution_id, LANG, 60) == ABORTED_NOW
    assert await redis.xrange(keys.job_stream(LANG), entry, entry) == []


async def test_a_submit_too_late_after_its_slot_queues_nothing_and_frees_it(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its slot may have been found lost meanwhile and given to another run: queueing it
    too would put the user over the cap."""
    t, late = Transitions(redis), _job()

    async def taken_long_ago(job: wire.Job, cap: int) -> int:
        await redis.zadd(keys.user_active(job.user), {job.execution_id: 0})
        return int(time.time()) - SUBMIT_LATE_S - 1

    monkeypatch.setattr(t, "_take_slot", taken_long_ago)
    with pytest.raises(RedisTimeoutError):
        await t.submit(late, max_concurrent=1)
    assert await redis.exists(keys.execution(late.execution_id)) == 0
    assert await redis.xlen(keys.job_stream(LANG)) == 0
    assert await redis.zcard(keys.user_active("alice")) == 0
