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
        while len(order) < len(jobs):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is None:
                continue
            event = wire.decode_event(message["data"])
            eid = message["channel"].decode().rpartition(":")[2]  # the channel ends in its id
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


def _pools(*spec: tuple[str, int, bool]) -> Any:
    return {
        name: SimpleNamespace(runtime=SimpleNamespace(weight=weight), accepting=accepting)
        for name, weight, accepting in spec
    }


def test_a_worker_waits_on_every_language_that_fits_not_only_this_turns() -> None:
    """Languages whose weights do not all fit together are read in turns, but the blocking
    wait covers each one that fits alone: a job of a language left out this turn must not
    wait for the read to time out (it did: up to a second for a warm python hello). A
    language whose job woke the last wait goes first in the next turn, so it is claimed."""
    pools = _pools(
        ("python", 1, True),
        ("java", 2, True),
        ("go", 2, True),
        ("rust", 2, False),  # its breaker is open: not read at all
    )
    unused: Any = None
    consumer = Consumer(unused, unused, unused, unused, unused, pools, 3, 60, set(), unused)
    for _ in range(len(pools)):
        chosen, waited = consumer._readable()
        assert sum(pools[lang].runtime.weight for lang in chosen) <= 3
        assert set(chosen) < {"python", "java", "go"}  # never all three at once
        assert set(waited) == {"python", "java", "go"}
    for _ in range(len(pools)):
        for woken in (["go"], ["java"], ["java", "go"], ["go", "java"]):
            chosen, waited = consumer._readable(woken)
            assert chosen[0] == woken[0] and set(waited) == {"python", "java", "go"}
            assert sum(pools[lang].runtime.weight for lang in chosen) <= 3
    chosen, _ = consumer._readable(["rust"])  # not accepting: still not read
    assert "rust" not in chosen


async def test_a_blocked_read_wakes_for_a_language_it_waits_on(redis: Redis) -> None:
    """A job of a language waited on but not read this turn wakes the read at once, without
    being claimed (the worker may have no room for it beside the others); it is the next
    read of that language that claims it."""
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
            start = time.monotonic()
            assert await queue.read([LANG], [LANG, OTHER]) == []
            woke_after = time.monotonic() - start
    assert woke_after < 0.2 + 0.3
    assert queue.woken == [OTHER]
    assert await redis.xpending(keys.job_stream(OTHER), keys.WORKER_GROUP) == {
        "pending": 0,
        "min": None,
        "max": None,
        "consumers": [],
    }
    (entry,) = await queue.read([OTHER], [LANG, OTHER])
    assert entry.job.execution_id == job.execution_id and queue.woken == []


async def test_a_read_over_a_backlog_of_languages_not_read_this_turn_claims_none(
    redis: Redis,
) -> None:
    """A backlog on several languages waited on but not read this turn: the wait answers
    at once but claims nothing (one blocking group read claimed a job of every one of them:
    six with room for one)."""
    t = Transitions(redis)
    queue = JobQueue(redis, "w1", t, 60)
    others = ["bash", "go", "java"]
    await queue.ensure_groups([LANG, *others])
    for language in others:
        for priority in keys.PRIORITIES:
            await t.submit(dataclasses.replace(_job(priority), language=language))
    with anyio.fail_after(0.5):
        assert await queue.read([LANG], [LANG, *others]) == []
    assert sorted(queue.woken) == sorted(others)
    for language in others:
        for stream in keys.job_streams(language):
            assert (await redis.xpending(stream, keys.WORKER_GROUP))["pending"] == 0
    first = queue.woken[0]
    (entry,) = await queue.read([first], [LANG, *others])
    assert entry.job.language == first


async def _claimed(redis: Redis, languages: list[str]) -> int:
    """Entries of these languages claimed and not yet acknowledged."""
    streams = [stream for language in languages for stream in keys.job_streams(language)]
    return sum([(await redis.xpending(s, keys.WORKER_GROUP))["pending"] for s in streams])


async def test_a_one_slot_worker_claims_one_job_at_a_time_from_a_backlog_of_languages(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer's own loop, over a backlog on every language but the one it reads
    first: never more claimed than it has room for, and every job claimed in the end."""
    t = Transitions(redis)
    queue = JobQueue(redis, "w1", t, 60)
    # The first turn starts at the second language: one with no job.
    languages = ["bash", LANG, "go", "java"]
    await queue.ensure_groups(languages)
    jobs = [
        dataclasses.replace(_job(priority), language=language)
        for language in languages
        if language != LANG
        for priority in keys.PRIORITIES
    ]
    for job in jobs:
        await t.submit(job)
    pools = _pools(*((language, 1, True) for language in languages))
    in_flight: set[str] = set()
    heartbeat: Any = SimpleNamespace(lost=anyio.Event())
    unused: Any = None
    consumer = Consumer(redis, queue, t, unused, unused, pools, 1, 60, in_flight, heartbeat)
    started: list[str] = []
    send, receive = anyio.create_memory_object_stream[str](len(jobs))
    release = anyio.Semaphore(0)

    async def handle(entry: Entry, read_at: float) -> None:
        await send.send(entry.job.execution_id)
        await release.acquire()
        await queue.ack(entry)
        in_flight.discard(entry.ref)
        consumer.capacity.give(1)

    monkeypatch.setattr(consumer, "_handle", handle)
    with anyio.fail_after(20), send, receive:
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer.run)
            for _ in jobs:
                started.append(await receive.receive())
                await anyio.sleep(0.1)  # time for any over-claim to show
                assert await _claimed(redis, languages) == 1 and len(in_flight) == 1
                release.release()
            tg.cancel_scope.cancel()
    assert sorted(started) == sorted(job.execution_id for job in jobs)


async def test_a_one_slot_worker_wakes_for_a_job_of_a_language_it_did_not_read(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two languages that do not fit together: whichever this turn reads, a job of the
    other is claimed and started within a fraction of the read's one-second wait."""
    t = Transitions(redis)
    queue = JobQueue(redis, "w1", t, 60)
    await queue.ensure_groups([LANG, OTHER])
    pools = _pools((LANG, 1, True), (OTHER, 1, True))
    heartbeat: Any = SimpleNamespace(lost=anyio.Event())
    unused: Any = None
    consumer = Consumer(redis, queue, t, unused, unused, pools, 1, 60, set(), heartbeat)
    started = anyio.Event()

    async def handle(entry: Entry, read_at: float) -> None:
        started.set()
        consumer.capacity.give(1)

    monkeypatch.setattr(consumer, "_handle", handle)
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run)
        for language in (OTHER, LANG, OTHER, LANG):
            await anyio.sleep(0.2)
            started = anyio.Event()
            await t.submit(dataclasses.replace(_job("standard"), language=language))
            with anyio.fail_after(0.3):
                await started.wait()
        tg.cancel_scope.cancel()
