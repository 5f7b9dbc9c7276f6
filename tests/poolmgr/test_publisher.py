"""The publisher on a real Redis: a flush cancelled mid-write (the run ending) loses nothing
and duplicates nothing; runs of one stream coalesce, a stream switch starts a frame."""

from __future__ import annotations

import uuid

import anyio
import pytest
from redis.asyncio import Redis

from poolmgr.publisher import ExecutionPublisher, Superseded
from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.transitions import Transitions

pytestmark = pytest.mark.anyio


async def _running(redis: Redis) -> ExecutionPublisher:
    t = Transitions(redis)
    job = wire.Job(uuid.uuid4().hex, "python", (wire.SourceFile("main.py", ""),))
    await t.submit(job)
    publisher = ExecutionPublisher(redis, t, job, "w:1-0", 60)
    assert await publisher.set_status(Status.PREPARING, Status.RUNNING)
    return publisher


async def _log(redis: Redis, publisher: ExecutionPublisher) -> list[wire.Event]:
    eid = publisher._job.execution_id
    return [wire.decode_event(raw) for raw in await redis.lrange(keys.output_log(eid), 0, -1)]


async def test_a_flush_cancelled_mid_write_loses_nothing(redis: Redis) -> None:
    publisher = await _running(redis)
    publisher.output("stdout", "a\n")
    await publisher.flush()
    publisher.output("stdout", "b\n")
    await redis.execute_command("CLIENT", "PAUSE", "500", "WRITE")
    with anyio.move_on_after(0.2):
        await publisher.flush()  # cancelled while its append waits on Redis
    publisher.output("stderr", "c\n")
    await publisher.flush()
    assert await _log(redis, publisher) == [
        wire.OutputEvent("stdout", "a\n", 0),
        wire.OutputEvent("stdout", "b\n", 1),
        wire.OutputEvent("stderr", "c\n", 2),
    ]


async def test_runs_of_one_stream_coalesce_in_order(redis: Redis) -> None:
    publisher = await _running(redis)
    for text in ("1", "2", "3"):
        publisher.output("stdout", text)
    publisher.output("stderr", "e")
    publisher.output("stdout", "4")
    await publisher.flush()
    assert await _log(redis, publisher) == [
        wire.OutputEvent("stdout", "123", 0),
        wire.OutputEvent("stderr", "e", 1),
        wire.OutputEvent("stdout", "4", 2),
    ]


async def test_a_superseded_attempt_cannot_finish_and_says_so(redis: Redis) -> None:
    publisher = await _running(redis)
    assert await Transitions(redis).requeue(publisher._job) == "ok"  # a peer took it over
    result = wire.Result(publisher._job.execution_id, "python", Status.COMPLETED, 0)
    with pytest.raises(Superseded):
        await publisher.finish(result)
