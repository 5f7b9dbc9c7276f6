"""A circuit breaker for container creation: a failing engine is not hammered."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CircuitBreaker:
    """Opens after `threshold` consecutive failures; stays open for a delay that doubles
    with each further failure (up to `max_delay_s`); one success closes it."""

    threshold: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    failures: int = 0
    open_until: float = 0.0

    def success(self) -> None:
        self.failures = 0
        self.open_until = 0.0

    def failure(self, now: float) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            delay = self.base_delay_s * 2 ** (self.failures - self.threshold)
            self.open_until = now + min(delay, self.max_delay_s)

    @property
    def tripped(self) -> bool:
        """Failing: no create has succeeded since the threshold was reached."""
        return self.failures >= self.threshold

    def is_open(self, now: float) -> bool:
        return now < self.open_until

    def retry_in(self, now: float) -> float:
        """Seconds until a create may be tried again (0 when closed)."""
        return max(0.0, self.open_until - now)
