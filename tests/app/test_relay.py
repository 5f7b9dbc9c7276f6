"""A watcher's live feed is bounded: past its limit it is dropped, never the shared reader."""

from __future__ import annotations

import anyio
import pytest

from app.relay import Feed

pytestmark = pytest.mark.anyio


async def test_a_feed_within_its_limit_keeps_everything_in_order() -> None:
    feed = Feed(limit_bytes=100)
    for i in range(10):
        feed.put(b"%d" % i)
    assert [await feed.get() for _ in range(10)] == [b"%d" % i for i in range(10)]


async def test_a_full_feed_drops_what_waits_and_says_so_once() -> None:
    feed = Feed(limit_bytes=350)
    for i in range(10):  # 100 bytes each: the 4th, 7th and 10th overflow it
        feed.put(bytes([48 + i]) * 100)
    assert await feed.get() is None  # re-read the log from where you are
    assert await feed.get() == b"9" * 100  # then what came after the last drop
    with anyio.move_on_after(0.05):
        await feed.get()
        pytest.fail("the feed should be empty")


async def test_a_waiting_watcher_wakes_on_an_event_and_on_a_drop() -> None:
    feed = Feed(limit_bytes=10)
    got: list[bytes | None] = []
    async with anyio.create_task_group() as tg:

        async def watcher() -> None:
            got.append(await feed.get())

        tg.start_soon(watcher)
        await anyio.wait_all_tasks_blocked()
        feed.put(b"x" * 20)  # one event above the limit on its own is kept
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(watcher)
        await anyio.wait_all_tasks_blocked()
        feed.put(b"y" * 6)
        feed.put(b"z" * 6)
    assert got == [b"x" * 20, None]
