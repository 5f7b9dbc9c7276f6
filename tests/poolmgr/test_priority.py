"""Priorities on the worker side, on a Redis of the test's own: premium jobs are read first,
standard ones still get one claim in STANDARD_EVERY while both wait (at the queue and on a
real one-slot worker), a blocked read wakes for either, and a second job brought by one
read waits for room instead of overfilling the worker."""

from __future__ import annotations

import dataclasses
import time
import uuid
from types import SimpleNamespace
from typing import Any, Literal

import anyio
import pytest
from redis.asyncio import Redis

from poolmgr.consumer import Consumer
from poolmgr.queue import BLOCK_MS, STANDARD_EVERY, Entry, JobQueue
from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.settings import PoolPolicy
from runtimes.transitions import Transitions
from tests.poolmgr.test_worker import result, running_worker

pytestmark = pytest.mark.anyio

LANG = "python"
OTHER = "bash"
Priority = Literal["standard", "premium"]


def _job(priority: Priority) -> wire.Job:
    return wire.Job(uuid.uuid4().hex, LANG, (wire.SourceFile("main.py", ""),), priority=priority)


async def _backlog(redis: Redis, each: int) -> None:
    """`each` jobs of both priorities, interleaved, standard first."""
    t = Transitions(redis)
    for _ in range(each):
        for priority in ("standard", "premium"):
            await t.submit(_job(priority))


def _check_order(order: list[str], each: int) -> None:
    """Premium first, but while premium jobs remain every STANDARD_EVERY-th claim is standard;
    then the rest of the standard ones."""
    assert sorted(order) == ["premium"] * each + ["standard"] * each
    last_premium = max(i for i, p in enumerate(order) if p == "premium")
    standard_turns = [i for i, p in enumerate(order[:last_premium]) if p == "standard"]
    assert standard_turns == list(range(STANDARD_EVERY - 1, last_premium, STANDARD_EVERY))
    assert set(order[last_premium + 1 :]) <= {"standard"}


async def test_premium_first_and_standard_never_starved(redis: Redis) -> None:
    queue = JobQueue(redis, "w", Transitions(redis), 60)
    await queue.ensure_groups([LANG])
    await _backlog(redis, 8)
    order = []
    for _ in range(16):
        (entry,) = await queue.read([LANG])
        order.append(entry.job.priority)
        await queue.ack(entry)
    _check_order(order, 8)
    assert order[:STANDARD_EVERY] == ["premium"] * (STANDARD_EVERY - 1) + ["standard"]
    with anyio.fail_after(2):
        assert await queue.read([LANG]) == []


async def test_a_job_of_either_priority_wakes_a_blocked_read_at_once(redis: Redis) -> None:
    queue, t = JobQueue(redis, "w", Transitions(redis), 60), Transitions(redis)
    await queue.ensure_groups([LANG])
    priorities: list[Priority] = ["premium", "standard"]
    for priority in priorities:
        job = _job(priority)

        async def later(job: wire.Job = job) -> None:
            await anyio.sleep(0.2)
            await t.submit(job)

        async with anyio.create_task_group() as tg:
            tg.start_soon(later)
            start = time.monotonic()
            entries = await queue.read([LANG])
            waited = time.monotonic() - start
        assert [e.job for e in entries] == [job]
        assert waited < 0.2 + BLOCK_MS / 1000 / 2


async def test_a_second_job_of_one_read_waits_for_room(monkeypatch: pytest.MonkeyPatch) -> None:
    in_flight: set[str] = set()
    pools: Any = {LANG: SimpleNamespace(runtime=SimpleNamespace(weight=1))}
    unused: Any = None
    consumer = Consumer(unused, unused, unused, unused, unused, pools, 1, 60, in_flight, unused)
    started: list[str] = []
    release = anyio.Event()

    async def handle(entry: Entry, read_at: float) -> None:
        started.append(entry.entry_id)
        await release.wait()
        in_flight.discard(entry.ref)
        consumer.capacity.give(1)

    monkeypatch.setattr(consumer, "_handle", handle)
    premium = Entry(keys.job_stream(LANG, "premium"), "1-0", _job("premium"))
    standard = Entry(keys.job_stream(LANG), "1-0", _job("standard"))  # ids are per stream
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await consumer._start(tg, premium)
            tg.start_soon(consumer._start, tg, standard)
            await anyio.sleep(0.2)
            assert started == ["1-0"]  # the second waits, held as this worker's own
            assert consumer.capacity.used == 1 and in_flight == {premium.ref, standard.ref}
            release.set()
    assert started == ["1-0", "1-0"] and consumer.capacity.used == 0


async def test_a_one_slot_worker_takes_premium_first_without_starving_standard(
    redis: Redis,
) -> None:
    each = 6
    t = Transitions(redis)
    jobs = []
    for _ in range(each):
        for priority in ("standard", "premium"):
            job = _job(priority)
            jobs.append(job)
            await t.submit(job)
    by_id = {job.execution_id: job.priority for job in jobs}
    pubsub = redis.pubsub()
    await pubsub.psubscribe(keys.events("*"))
    order: list[str] = []

    async def record_starts() -> None:
        prefix = keys.events("")
        while len(order) < len(jobs):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is None:
                continue
            event = wire.decode_event(message["data"])
            eid = message["channel"].decode().removeprefix(prefix)
            if isinstance(event, wire.StatusEvent) and event.status == Status.PREPARING:
                order.append(by_id[eid])

    policy = PoolPolicy(min=1, max=1)
    with anyio.fail_after(90):
        async with anyio.create_task_group() as tg:  # until every start has been seen
            tg.start_soon(record_starts)
            async with running_worker(redis, worker_slots=1, policy=policy):
                results = [await result(redis, job, 60) for job in jobs]
    await pubsub.aclose()
    assert {r.status for r in results} == {Status.COMPLETED}
    _check_order(order, each)


def test_a_worker_waits_on_every_language_that_fits_not_only_this_turns() -> None:
    """Languages whose weights do not all fit together are read in turns, but the blocking
    read covers each one that fits alone: a job of a language left out this turn must not
    wait for the read to time out (it did: up to a second for a warm python hello)."""
    pools: Any = {
        name: SimpleNamespace(runtime=SimpleNamespace(weight=weight), accepting=accepting)
        for name, weight, accepting in (
            ("python", 1, True),
            ("java", 2, True),
            ("go", 2, True),
            ("rust", 2, False),  # its breaker is open: not read at all
        )
    }
    unused: Any = None
    consumer = Consumer(unused, unused, unused, unused, unused, pools, 3, 60, set(), unused)
    for _ in range(len(pools)):
        chosen, waited = consumer._readable()
        assert sum(pools[lang].runtime.weight for lang in chosen) <= 3
        assert set(chosen) < {"python", "java", "go"}  # never all three at once
        assert set(waited) == {"python", "java", "go"}


async def test_a_blocked_read_wakes_for_a_language_it_waits_on(redis: Redis) -> None:
    t = Transitions(redis)
    queue = JobQueue(redis, "w1", t, 60)
    await queue.ensure_groups([LANG, OTHER])
    job = dataclasses.replace(_job("standard"), language=OTHER)

    async def submit_soon() -> None:
        await anyio.sleep(0.2)
        await t.submit(job)

    with anyio.fail_after(0.8):  # well inside the read's one-second block
        async with anyio.create_task_group() as tg:
            tg.start_soon(submit_soon)
            (entry,) = await queue.read([LANG], [LANG, OTHER])
    assert entry.job.execution_id == job.execution_id
