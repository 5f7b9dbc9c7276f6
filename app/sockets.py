"""Caps on open WebSockets, per execution and per client address."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import anyio


class TooManySockets(Exception):
    """A socket past a cap; `reason` is the close reason the client reads."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SocketLimits:
    """Counts this process's open sockets. Every socket costs a task, buffers and its
    share of the relay's fan-out; the caps keep one client, or one execution's audience,
    from taking them all."""

    def __init__(self, per_execution: int, per_client: int) -> None:
        self._per_execution = per_execution
        self._per_client = per_client
        self._executions: Counter[str] = Counter()
        self._clients: Counter[str] = Counter()
        self._closed = anyio.Event()

    @contextmanager
    def hold(self, execution_id: str | None, client: str) -> Iterator[None]:
        """Count the socket (of one execution's watchers unless `execution_id` is None) while
        the block runs; TooManySockets if a cap is reached."""
        if execution_id is not None and self._executions[execution_id] >= self._per_execution:
            raise TooManySockets(
                f"too many sockets: at most {self._per_execution} watch one execution"
            )
        if self._clients[client] >= self._per_client:
            raise TooManySockets(f"too many sockets: at most {self._per_client} per client")
        if execution_id is not None:
            self._executions[execution_id] += 1
        self._clients[client] += 1
        try:
            yield
        finally:
            if execution_id is not None:
                _release(self._executions, execution_id)
            _release(self._clients, client)
            self._closed.set()

    @property
    def open(self) -> int:
        """Sockets open in this process."""
        return sum(self._clients.values())

    async def all_closed(self) -> None:
        """Return once no socket is open."""
        while self.open:
            self._closed = anyio.Event()
            await self._closed.wait()


def _release(counts: Counter[str], key: str) -> None:
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]
