"""The frame sequence a watcher of one execution sees: status, replayed output, live, exit."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from app.executions import ExecutionStore, Record
from app.relay import Relay
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

    def catch_up(self, log: list[bytes]) -> Iterator[bytes]:
        """Frames of the replay log not shown yet (a retried append may repeat one)."""
        for raw in log[self.next_seq :]:
            yield from self.live(raw)

    def live(self, raw: bytes) -> Iterator[bytes]:
        """What to show of an output or status event: new output, later statuses."""
        event = wire.decode_event(raw)
        if isinstance(event, wire.OutputEvent) and event.seq == self.next_seq:
            self.next_seq += 1
            yield raw
        elif (
            isinstance(event, wire.StatusEvent)
            and event.status.rank > self.shown.rank
            and not event.status.terminal
        ):
            self.shown = event.status
            yield raw

    def end(self, exit_event: wire.ExitEvent) -> Iterator[bytes]:
        if self.shown != exit_event.status:
            yield wire.encode(wire.StatusEvent(exit_event.status))
        yield wire.encode(exit_event)


async def watch_frames(
    store: ExecutionStore, relay: Relay, execution_id: str
) -> AsyncGenerator[bytes]:
    """Encoded frames in contract order, with no gap and no duplicate, ending with `exit`.

    Subscribing before reading the record and the replay log is what makes this
    gap-free: any frame not yet in the log is published after we subscribed. A live
    frame that skips a `seq`, the `exit` event, or a long silence makes it re-read the log
    and the record (the result is written in the same script that publishes `exit`).
    """
    async with relay.watch(execution_id) as live:
        record, log = await _snapshot(store, execution_id)
        cursor = _Cursor(record.status)
        yield wire.encode(wire.StatusEvent(record.status))
        while True:
            for raw in cursor.catch_up(log):
                yield raw
            if record.result is not None:
                for raw in cursor.end(wire.ExitEvent.of(record.result)):
                    yield raw
                return
            while (event := await _next(live)) is not None and not _resync_first(event, cursor):
                for shown in cursor.live(event):
                    yield shown
            record, log = await _snapshot(store, execution_id)


async def _next(live: MemoryObjectReceiveStream[bytes]) -> bytes | None:
    """The next live event, or None after a silence (no yield may sit inside a cancel scope)."""
    with anyio.move_on_after(RESYNC_S):
        return await live.receive()
    return None


def _resync_first(raw: bytes, cursor: _Cursor) -> bool:
    """A skipped `seq`, or the end: re-read Redis before going on, so that no frame that
    pub/sub dropped (a Redis restart, a slow subscriber) is missing before `exit`."""
    event = wire.decode_event(raw)
    if isinstance(event, wire.OutputEvent):
        return event.seq > cursor.next_seq
    return isinstance(event, wire.ExitEvent)


async def _snapshot(store: ExecutionStore, execution_id: str) -> tuple[Record, list[bytes]]:
    record, log = await store.snapshot(execution_id)
    if record is None:
        raise UnknownExecution(execution_id)
    return record, log


def pending_result(record_id: str, language: str, status: Status) -> wire.Result:
    """The result body of an execution that has not finished yet."""
    return wire.Result(execution_id=record_id, language=language, status=status)
