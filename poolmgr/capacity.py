"""Weighted execution slots: a heavy language's run costs a worker more than a light one's."""

from __future__ import annotations

import anyio


class Capacity:
    """`total` units shared by running executions, each taking its runtime's weight.

    The consumer claims jobs only of languages whose weights fit together beside those
    running; its wait on the others that fit alone only wakes it, claiming nothing. So a
    claimed job starts at once, but for the second of a blocked read that got a job of each
    priority of one language, which waits in the worker until room frees (see
    `Consumer._start`). A weight above `total` is clamped so it still runs alone.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._freed = anyio.Event()

    def _cost(self, weight: int) -> int:
        return min(weight, self.total)

    @property
    def free(self) -> int:
        return self.total - self.used

    def fits(self, weight: int) -> bool:
        return self.fits_together([weight])

    def fits_together(self, weights: list[int]) -> bool:
        """Whether runs of all these weights fit at once, next to those running."""
        return self.used + sum(self._cost(w) for w in weights) <= self.total

    def take(self, weight: int) -> None:
        if not self.fits(weight):
            raise RuntimeError(f"weight {weight} does not fit ({self.used}/{self.total} used)")
        self.used += self._cost(weight)

    def give(self, weight: int) -> None:
        self.used -= self._cost(weight)
        self._freed.set()
        self._freed = anyio.Event()

    async def wait_freed(self) -> None:
        await self._freed.wait()
