"""A watcher's frames against a real Redis, with this test writing what a worker would:
re-reads start at the next `seq` needed, and a watcher that falls behind loses nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager

import anyio
import orjson
import pytest
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from app import watch
from app.executions import SNAPSHOT_FRAMES, ExecutionStore, Snapshot
from app.relay import Relay
from app.snapshots import Snapshots
from app.watch import watch_frames
from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.redis_client import connect
from runtimes.settings import Settings

pytestmark = pytest.mark.anyio


class SpyStore(ExecutionStore):
    """Records each snapshot read: where it started and how many frames it returned."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis, ttl_s=60, max_stdin_bytes=1024)
        self.reads: list[tuple[int, int]] = []

    async def snapshot(self, execution_id: str, start: int = 0) -> Snapshot:
        record, log = await super().snapshot(execution_id, start)
        self.reads.append((start, len(log)))
        return record, log


class FakeRun:
    """One execution's writes, as the worker makes them: log first, then publish."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.id = keys.new_execution_id("python")
        self.seq = 0

    async def start(self) -> None:
        fields: dict[FieldT, EncodableT] = {"status": "running", "language": "python", "attempt": 0}
        await self.redis.hset(keys.execution(self.id), mapping=fields)

    async def print(self, line: str) -> None:
        event = wire.encode(wire.OutputEvent("stdout", line, self.seq))
        self.seq += 1
        await self.redis.rpush(keys.output_log(self.id), event)
        await self.redis.publish(keys.events(self.id), event)

    async def finish(self, with_exit: bool = True) -> None:
        """`with_exit=False` writes the record as a worker of an older version did."""
        result = wire.Result(self.id, "python", Status.COMPLETED, exit_code=0)
        exit_event = wire.encode(wire.ExitEvent.of(result))
        fields: dict[FieldT, EncodableT] = {
            "status": "completed",
            "result": wire.encode(result),
        }
        if with_exit:
            fields["exit"] = exit_event
        await self.redis.hset(keys.execution(self.id), mapping=fields)
        await self.redis.publish(keys.events(self.id), exit_event)


@asynccontextmanager
async def watching(redis_url: str, feed_limit_bytes: int) -> AsyncIterator[tuple[Relay, SpyStore]]:
    redis = connect(redis_url, Settings())
    relay, store = Relay(redis, feed_limit_bytes), SpyStore(redis)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(relay.run)
            yield relay, store
            tg.cancel_scope.cancel()
    finally:
        await relay.aclose()
        await redis.aclose()


def _lines(frames: list[bytes]) -> list[str]:
    return [f["data"] for f in map(orjson.loads, frames) if f["type"] == "stdout"]


async def test_a_resync_after_silence_reads_only_what_is_new(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "RESYNC_S", 0.2)
    async with watching(redis_url, 1 << 20) as (relay, store):
        writer = connect(redis_url, Settings())
        run = FakeRun(writer)
        await run.start()
        for i in range(200):
            await run.print(f"{i}\n")
        frames: list[bytes] = []

        async def watcher() -> None:
            async with aclosing(watch_frames(Snapshots(store), relay, run.id)) as stream:
                async for raw in stream:
                    frames.append(raw)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watcher)
            await anyio.sleep(0.7)  # silent: the watcher re-reads Redis a few times
            await run.print("200\n")
            await run.finish()
        await writer.aclose()
    assert _lines(frames) == [f"{i}\n" for i in range(201)]
    assert orjson.loads(frames[-1])["type"] == "exit"
    pages = _catch_up(store.reads, 0, 200)
    resyncs = store.reads[pages:]
    assert len(resyncs) >= 2, "the silences did not make it re-read"
    assert all(start >= 200 for start, _ in resyncs), resyncs  # from the next seq, not 0
    assert sum(count for _, count in resyncs) <= 1


async def test_a_watcher_that_falls_behind_catches_up_from_the_log(redis_url: str) -> None:
    async with watching(redis_url, feed_limit_bytes=2048) as (relay, store):
        writer = connect(redis_url, Settings())
        run = FakeRun(writer)
        await run.start()
        go_on = anyio.Event()
        frames: list[bytes] = []

        async def slow_watcher() -> None:
            async with aclosing(watch_frames(Snapshots(store), relay, run.id)) as stream:
                async for raw in stream:
                    frames.append(raw)
                    if len(frames) == 6:  # the status and five lines, then it stops reading
                        await go_on.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow_watcher)
            for i in range(500):  # ~40 bytes a frame: 20 kB, ten times the feed's limit
                await run.print(f"{i}\n")
            await anyio.sleep(0.2)  # the relay has dispatched (and dropped) them all
            go_on.set()
            await run.finish()
        await writer.aclose()
    assert _lines(frames) == [f"{i}\n" for i in range(500)]
    assert orjson.loads(frames[-1])["type"] == "exit"
    # The drop made it re-read the log from where it was, not from 0 and not from the feed,
    # a page at a time.
    start = store.reads[1][0]
    assert 5 <= start < 500, store.reads
    _catch_up(store.reads[1:], start, 500)


def _catch_up(reads: list[tuple[int, int]], start: int, end: int) -> int:
    """How many `reads` read the log from `start` to `end` in consecutive pages, each full
    but the last; asserts that they do."""
    for i, (first, count) in enumerate(reads):
        assert first == start and count <= SNAPSHOT_FRAMES, reads
        start += count
        if count < SNAPSHOT_FRAMES:
            assert start == end, reads
            return i + 1
    raise AssertionError(f"the catch-up did not end: {reads}")


async def test_a_record_ended_by_an_older_worker_still_ends_the_watch(redis_url: str) -> None:
    """A worker of the previous version writes the result without the `exit` summary that
    watchers read; during a rolling upgrade its watchers must still see the end."""
    async with watching(redis_url, feed_limit_bytes=1 << 20) as (relay, store):
        writer = connect(redis_url, Settings())
        run = FakeRun(writer)
        await run.start()
        await run.print("0\n")
        await run.finish(with_exit=False)
        with anyio.fail_after(10):
            async with aclosing(watch_frames(Snapshots(store), relay, run.id)) as stream:
                frames = [raw async for raw in stream]
        await writer.aclose()
    assert _lines(frames) == ["0\n"]
    assert orjson.loads(frames[-1])["type"] == "exit"
