"""The frame sequence a watcher of one execution sees: status, replayed output, live, exit."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing

import anyio

from app.executions import SNAPSHOT_FRAMES, Record
from app.relay import Feed, Relay
from app.snapshots import Snapshots
from runtimes import wire
from runtimes.lifecycle import Status

RESYNC_S = 5.0  # silence after which the watcher re-reads Redis, in case pub/sub lost a frame


class UnknownExecution(LookupError):
    """No execution has this id (or its record has expired)."""


class _Cursor:
    """What this watcher has shown: the next output `seq` and the last status."""

    def __init__(self, status: Status) -> None:
        self.next_seq = 0
        self.shown = status

    def catch_up(self, record: Record, log: list[bytes]) -> Iterator[bytes]:
        """What a re-read adds: a later status, then the frames of `log` (read from index
        `next_seq` on) not shown yet; a retried append may repeat one."""
        if self._advance(record.status):
            yield wire.encode(wire.StatusEvent(record.status))
        for raw in log:
            yield from self.live(raw)

    def live(self, raw: bytes) -> Iterator[bytes]:
        """What to show of an output or status event: new output, later statuses."""
        event = wire.decode_event(raw)
        if isinstance(event, wire.OutputEvent) and event.seq == self.next_seq:
            self.next_seq += 1
            yield raw
        elif isinstance(event, wire.StatusEvent) and self._advance(event.status):
            yield raw

    def _advance(self, status: Status) -> bool:
        """Whether `status` is news to show (the end status is shown by `end`)."""
        if status.rank > self.shown.rank and not status.terminal:
            self.shown = status
            return True
        return False

    def end(self, exit_event: wire.ExitEvent) -> Iterator[bytes]:
        if self.shown != exit_event.status:
            yield wire.encode(wire.StatusEvent(exit_event.status))
        yield wire.encode(exit_event)


async def watch_frames(
    snapshots: Snapshots, relay: Relay, execution_id: str
) -> AsyncGenerator[bytes]:
    """Encoded frames in contract order, with no gap and no duplicate, ending with `exit`."""
    async with (
        relay.watch(execution_id) as feed,
        aclosing(follow(snapshots, feed, execution_id)) as frames,
    ):
        async for raw in frames:
            yield raw


async def follow(snapshots: Snapshots, feed: Feed, execution_id: str) -> AsyncGenerator[bytes]:
    """The frames of an execution whose live `feed` is already subscribed.

    Subscribing before reading the record and the replay log is what makes this
    gap-free: any frame not yet in the log is published after we subscribed. A live
    frame that skips a `seq`, the `exit` event, a dropped feed (this watcher fell too far
    behind) or a long silence makes it re-read the record and the log from the next `seq`
    it needs (the result is written in the same script that publishes `exit`), a page of
    SNAPSHOT_FRAMES at a time, so a slow watcher never holds the whole log.
    """
    start = 0
    record, log = await _snapshot(snapshots, execution_id, start)
    cursor = _Cursor(record.status)
    yield wire.encode(wire.StatusEvent(record.status))
    while True:
        for raw in cursor.catch_up(record, log):
            yield raw
        if len(log) == SNAPSHOT_FRAMES:  # a full page: the log goes on past it
            start = max(cursor.next_seq, start + len(log))
            record, log = await _snapshot(snapshots, execution_id, start)
            continue
        exit_event = record.exit or await _exit_of_result(snapshots, record)
        if exit_event is not None:
            for raw in cursor.end(exit_event):
                yield raw
            return
        while (event := await _next(feed)) is not None and not _resync_first(event, cursor):
            for shown in cursor.live(event):
                yield shown
        start = cursor.next_seq
        record, log = await _snapshot(snapshots, execution_id, start)


async def _next(feed: Feed) -> bytes | None:
    """The next live event, or None after a silence or a drop (no yield in a cancel scope)."""
    with anyio.move_on_after(RESYNC_S):
        return await feed.get()
    return None


def _resync_first(raw: bytes, cursor: _Cursor) -> bool:
    """A skipped `seq`, or the end: re-read Redis before going on, so that no frame that
    pub/sub dropped (a Redis restart, a slow subscriber) is missing before `exit`."""
    event = wire.decode_event(raw)
    if isinstance(event, wire.OutputEvent):
        return event.seq > cursor.next_seq
    return isinstance(event, wire.ExitEvent)


async def _exit_of_result(snapshots: Snapshots, record: Record) -> wire.ExitEvent | None:
    """The exit event of a terminal record written without one (by a worker of an older
    version, during a rolling upgrade): from its full result."""
    if not record.status.terminal:
        return None
    result = await snapshots.result(record.execution_id)
    return wire.ExitEvent.of(result) if result is not None else None


async def _snapshot(
    snapshots: Snapshots, execution_id: str, start: int
) -> tuple[Record, list[bytes]]:
    record, log = await snapshots.read(execution_id, start)
    if record is None:
        raise UnknownExecution(execution_id)
    return record, log


def pending_result(record_id: str, language: str, status: Status) -> wire.Result:
    """The result body of an execution that has not finished yet."""
    return wire.Result(execution_id=record_id, language=language, status=status)
