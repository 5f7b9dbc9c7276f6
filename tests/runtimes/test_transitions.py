"""The status scripts on a real Redis: one end, stale attempts and duplicates refused, and
each script idempotent for its caller (a re-sent script whose reply was lost answers ok)."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.transitions import ABORTED_NOW, ALIVE, KILL_SENT, OK, ORPHAN, Transitions

pytestmark = pytest.mark.anyio


@pytest.fixture
def redis(shared_redis: Redis) -> Redis:
    return shared_redis


OWNER, OTHER = "w1:1-0", "w2:1-1"
RUN = [Status.PREPARING, Status.RUNNING]


async def _queued(redis: Redis) -> wire.Job:
    job = wire.Job(uuid.uuid4().hex, "python", (wire.SourceFile("main.py", ""),))
    await redis.hset(keys.execution(job.execution_id), mapping={"status": "queued", "attempt": 0})
    return job


def _unserved() -> wire.Job:
    """A job of a language no worker serves: the session's server must not take it."""
    lang = f"unserved-{uuid.uuid4().hex[:8]}"
    return wire.Job(keys.new_execution_id(lang), lang, (wire.SourceFile("main.py", ""),))


def _frame(seq: int) -> bytes:
    return wire.encode(wire.OutputEvent("stdout", f"line {seq}\n", seq))


async def test_a_duplicated_entry_cannot_start_the_same_attempt_twice(redis: Redis) -> None:
    t, job = Transitions(redis), await _queued(redis)
    assert await t.advance(job, OWNER, RUN) == OK
    assert await t.advance(job, OTHER, RUN) == "taken"
    assert await t.append(job, OTHER, 0, [_frame(0)], 60) == "taken"


async def test_a_superseded_attempt_can_neither_advance_nor_finish(redis: Redis) -> None:
    t, job = Transitions(redis), await _queued(redis)
    assert await t.advance(job, OWNER, [Status.PREPARING]) == OK
    assert await t.requeue(job) == OK  # its worker was presumed dead
    result = wire.Result(job.execution_id, "python", Status.COMPLETED, 0)
    assert await t.advance(job, OWNER, [Status.RUNNING]) == "stale"
    assert await t.append(job, OWNER, 0, [_frame(0)], 60) == "stale"
    assert await t.finish(job.attempt, OWNER, result, 60) == "stale"
    assert await t.finish(job.attempt + 1, OTHER, result, 60) == OK


async def test_exactly_one_terminal_status(redis: Redis) -> None:
    t, job = Transitions(redis), await _queued(redis)
    await t.advance(job, OWNER, RUN)
    assert await t.abort(job.execution_id, "python", 60) == KILL_SENT
    done = wire.Result(job.execution_id, "python", Status.ABORTED)
    assert await t.finish(job.attempt, OWNER, done, 60) == OK
    late = wire.Result(job.execution_id, "python", Status.COMPLETED, 0)
    assert await t.finish(job.attempt, "recovery", late, 60) == "aborted"
    assert await t.abort(job.execution_id, "python", 60) == "aborted"


async def test_abort_while_queued_ends_it_at_once(redis: Redis) -> None:
    t, job = Transitions(redis), await _queued(redis)
    assert await t.abort(job.execution_id, "python", 60) == ABORTED_NOW
    assert await t.advance(job, OWNER, RUN) == "aborted"


async def test_no_requeue_once_output_reached_a_watcher(redis: Redis) -> None:
    t, job = Transitions(redis), await _queued(redis)
    await t.advance(job, OWNER, RUN)
    assert await t.append(job, OWNER, 0, [_frame(0)], 60) == OK
    assert await t.requeue(job) == "has_output"


# A script that ran but whose reply was lost is sent again by the caller (redis-py retries
# on its own, and until_redis retries connection errors): it must answer ok, not refuse.


async def test_a_resent_advance_is_ok(redis: Redis) -> None:
    t, job = Transitions(redis), await _queued(redis)
    assert await t.advance(job, OWNER, [Status.PREPARING]) == OK
    assert await t.advance(job, OWNER, [Status.PREPARING]) == OK
    assert await t.advance(job, OWNER, RUN) == OK
    assert await t.advance(job, OWNER, RUN) == OK
    assert await redis.hget(keys.execution(job.execution_id), "status") == b"running"


async def test_a_resent_finish_is_ok_and_ends_once(redis: Redis) -> None:
    t, job = Transitions(redis), await _queued(redis)
    await t.advance(job, OWNER, RUN)
    done = wire.Result(job.execution_id, "python", Status.COMPLETED, 0)
    assert await t.finish(job.attempt, OWNER, done, 60) == OK
    assert await t.finish(job.attempt, OWNER, done, 60) == OK
    assert await redis.exists(keys.control(job.execution_id)) == 0


async def test_a_resent_requeue_is_ok_and_bumps_once(redis: Redis) -> None:
    t, job = Transitions(redis), await _queued(redis)
    await t.advance(job, OWNER, [Status.PREPARING])
    assert await t.requeue(job) == OK
    assert await t.requeue(job) == OK
    assert await redis.hget(keys.execution(job.execution_id), "attempt") == b"1"


async def test_a_resent_append_adds_no_duplicate(redis: Redis) -> None:
    t, job = Transitions(redis), await _queued(redis)
    await t.advance(job, OWNER, RUN)
    assert await t.append(job, OWNER, 0, [_frame(0), _frame(1)], 60) == OK
    assert await t.append(job, OWNER, 0, [_frame(0), _frame(1)], 60) == OK
    assert await t.append(job, OWNER, 2, [_frame(2)], 60) == OK
    log = await redis.lrange(keys.output_log(job.execution_id), 0, -1)
    assert [wire.decode_event(raw) for raw in log] == [
        wire.decode_event(_frame(i)) for i in range(3)
    ]


async def test_no_output_after_the_end(redis: Redis) -> None:
    t, job = Transitions(redis), await _queued(redis)
    await t.advance(job, OWNER, RUN)
    await t.finish(job.attempt, OWNER, wire.Result(job.execution_id, "python", Status.FAILED), 60)
    assert await t.append(job, OWNER, 0, [_frame(0)], 60) == "failed"


async def test_the_sweeper_finds_an_execution_whose_job_is_gone(redis: Redis) -> None:
    t, job = Transitions(redis), _unserved()
    entry = await t.submit(job)
    assert await t.sweep(job.execution_id, job.language) == (ALIVE, 0)
    await redis.xdel(keys.job_stream(job.language), entry)  # acked without an end: a lost reply
    assert await t.sweep(job.execution_id, job.language) == (ORPHAN, 0)
    done = wire.Result(job.execution_id, job.language, Status.FAILED)
    assert await t.finish(0, "sweeper", done, 60) == OK
    assert await t.sweep(job.execution_id, job.language) == ("failed", 0)
    assert await redis.zscore(keys.active(job.language), job.execution_id) is None


async def test_abort_while_queued_takes_the_job_off_the_stream(redis: Redis) -> None:
    t, job = Transitions(redis), _unserved()
    entry = await t.submit(job)
    assert await t.abort(job.execution_id, job.language, 60) == ABORTED_NOW
    assert await redis.xrange(keys.job_stream(job.language), entry, entry) == []
    assert await redis.zscore(keys.active(job.language), job.execution_id) is None


async def test_a_resent_submit_queues_the_job_once(redis: Redis) -> None:
    t, job = Transitions(redis), _unserved()
    first = await t.submit(job)
    await t.advance(job, OWNER, RUN)
    assert await t.submit(job) == first  # its reply was lost: sent again
    assert await redis.hget(keys.execution(job.execution_id), "status") == b"running"
    assert await redis.xlen(keys.job_stream(job.language)) == 1


async def test_a_resent_abort_is_the_abort(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    t, job = Transitions(redis), _unserved()
    await t.submit(job)
    token = uuid.uuid4()
    monkeypatch.setattr("runtimes.transitions.uuid.uuid4", lambda: token)  # the same call
    assert await t.abort(job.execution_id, job.language, 60) == ABORTED_NOW
    assert await t.abort(job.execution_id, job.language, 60) == ABORTED_NOW
    monkeypatch.undo()
    assert await t.abort(job.execution_id, job.language, 60) == "aborted"  # another DELETE
