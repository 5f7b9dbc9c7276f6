"""Coalesced snapshot reads: a burst of watchers costs about two reads, never a stale one."""

from __future__ import annotations

from typing import cast

import anyio
import pytest

from app.executions import ExecutionStore, Snapshot
from app.snapshots import Snapshots

pytestmark = pytest.mark.anyio


class GatedStore:
    """A store whose reads wait for `open`, numbered in the order they were sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []
        self.open = anyio.Event()
        self.fail = False

    async def snapshot(self, execution_id: str, start: int = 0) -> Snapshot:
        self.sent.append((execution_id, start))
        number = len(self.sent)
        await self.open.wait()
        if self.fail:
            raise ConnectionError("redis went away")
        return None, [str(number).encode()]


def _snapshots(store: GatedStore) -> Snapshots:
    return Snapshots(cast(ExecutionStore, store))


async def test_a_burst_of_watchers_costs_two_reads() -> None:
    store = GatedStore()
    snapshots = _snapshots(store)
    got: list[Snapshot] = []

    async def watcher() -> None:
        got.append(await snapshots.read("e", 0))

    async with anyio.create_task_group() as tg:
        for _ in range(300):
            tg.start_soon(watcher)
        await anyio.wait_all_tasks_blocked()
        store.open.set()
    assert store.sent == [("e", 0), ("e", 0)]
    # The first caller got the first read; everyone who asked while it was in flight, the
    # second one (the first may predate their subscriptions).
    assert sorted(log for _, log in got) == [[b"1"]] + [[b"2"]] * 299


async def test_different_offsets_and_executions_are_not_shared() -> None:
    store = GatedStore()
    store.open.set()
    snapshots = _snapshots(store)
    async with anyio.create_task_group() as tg:
        for key in (("e", 0), ("e", 5), ("f", 0)):
            tg.start_soon(snapshots.read, *key)
    assert sorted(store.sent) == [("e", 0), ("e", 5), ("f", 0)]


async def test_an_error_reaches_everyone_who_shared_the_read() -> None:
    store = GatedStore()
    store.fail = True
    snapshots = _snapshots(store)
    errors: list[Exception] = []

    async def watcher() -> None:
        try:
            await snapshots.read("e", 0)
        except ConnectionError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(watcher)
        await anyio.wait_all_tasks_blocked()
        store.open.set()
    assert len(errors) == 5 and len(store.sent) == 2


async def test_a_cancelled_reader_does_not_strand_the_others() -> None:
    store = GatedStore()
    snapshots = _snapshots(store)
    got: list[Snapshot] = []
    first_scope = anyio.CancelScope()

    async def first() -> None:  # sends the first read, then its socket closes
        with first_scope:
            await snapshots.read("e", 0)

    async def second() -> None:
        got.append(await snapshots.read("e", 0))

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(second)
        await anyio.wait_all_tasks_blocked()
        first_scope.cancel()
        await anyio.wait_all_tasks_blocked()
        store.open.set()
    assert got == [(None, [b"2"])] and len(store.sent) == 2
