"""Watchers of one execution that need the same read at the same time share one round trip."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import anyio

from app.executions import ExecutionStore, Snapshot
from runtimes import wire


@dataclass(eq=False)
class _Read:
    begun: int
    done: anyio.Event = field(default_factory=anyio.Event)
    value: Snapshot | None = None
    error: Exception | None = None


class Snapshots:
    """`ExecutionStore.snapshot`, coalesced per (execution, start).

    Hundreds of watchers of one execution arrive together (a shared link) and read the
    replay log together (its `exit`); each reading on its own would take one pooled
    connection apiece. A caller shares only a read begun after it asked, because a read
    already in flight may predate its subscription (or the gap it wants filled): it waits
    for that one to end and joins the next. A burst of N callers costs about two reads.
    """

    def __init__(self, store: ExecutionStore) -> None:
        self._store = store
        self._reads: dict[tuple[str, int], _Read] = {}
        self._clock = itertools.count()

    async def result(self, execution_id: str) -> wire.Result | None:
        """The full result (rarely needed: see `watch._exit_of_result`); not coalesced."""
        return await self._store.result(execution_id)

    async def read(self, execution_id: str, start: int) -> Snapshot:
        key = (execution_id, start)
        asked = next(self._clock)
        while True:
            read = self._reads.get(key)
            if read is None:
                return await self._lead(key)
            await read.done.wait()
            if read.begun > asked:
                if read.error is not None:
                    raise read.error
                if read.value is not None:
                    return read.value
            # It began before we asked, or its caller was cancelled: take part in the next.

    async def _lead(self, key: tuple[str, int]) -> Snapshot:
        read = self._reads[key] = _Read(next(self._clock))
        try:
            read.value = await self._store.snapshot(*key)
            return read.value
        except Exception as exc:
            read.error = exc
            raise
        finally:
            del self._reads[key]
            read.done.set()
