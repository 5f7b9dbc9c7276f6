"""The frame sequence a watcher of one execution sees: status, replayed output, live, exit."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from app.executions import ExecutionStore
from app.relay import Relay
from runtimes import wire
from runtimes.lifecycle import Status


class UnknownExecution(LookupError):
    """No execution has this id (or its record has expired)."""


async def watch_frames(
    store: ExecutionStore, relay: Relay, execution_id: str
) -> AsyncGenerator[bytes]:
    """Encoded frames in contract order, with no gap and no duplicate, ending with `exit`.

    Subscribing before reading the record and the replay log is what makes this
    gap-free: any frame not yet in the log is published after we subscribed.
    """
    async with relay.watch(execution_id) as live:
        record, replay = await store.snapshot(execution_id)
        if record is None:
            raise UnknownExecution(execution_id)
        shown = record.status
        yield wire.encode(wire.StatusEvent(shown))
        next_seq = len(replay)
        for raw in replay:
            yield raw
        if record.result is not None:
            yield wire.encode(wire.ExitEvent.of(record.result))
            return
        async for raw in live:
            event = wire.decode_event(raw)
            if isinstance(event, wire.OutputEvent):
                if event.seq > next_seq:  # never expected; heal from the log rather than skip
                    for missed in await store.output(execution_id, next_seq):
                        next_seq += 1
                        yield missed
                if event.seq == next_seq:
                    next_seq += 1
                    yield raw
            elif isinstance(event, wire.StatusEvent):
                if event.status.rank > shown.rank and not event.status.terminal:
                    shown = event.status
                    yield raw
            else:
                if shown != event.status:
                    yield wire.encode(wire.StatusEvent(event.status))
                yield raw
                return


def pending_result(record_id: str, language: str, status: Status) -> wire.Result:
    """The result body of an execution that has not finished yet."""
    return wire.Result(execution_id=record_id, language=language, status=status)
