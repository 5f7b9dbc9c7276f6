"""A moving average that follows recent executions and forgets old ones."""

from __future__ import annotations


class Ewma:
    """Exponentially weighted: each sample moves the mean by `alpha` of its difference."""

    def __init__(self, initial: float, alpha: float = 0.2) -> None:
        self.value = initial
        self._alpha = alpha

    def record(self, sample: float) -> None:
        self.value += self._alpha * (sample - self.value)
