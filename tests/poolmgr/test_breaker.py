"""The create circuit breaker opens after consecutive failures, backs off, closes on success."""

from __future__ import annotations

from poolmgr.breaker import CircuitBreaker


def test_stays_closed_below_threshold() -> None:
    breaker = CircuitBreaker(threshold=3)
    breaker.failure(0.0)
    breaker.failure(0.0)
    assert not breaker.is_open(0.0)


def test_opens_and_backs_off_exponentially_up_to_the_cap() -> None:
    breaker = CircuitBreaker(threshold=2, base_delay_s=1.0, max_delay_s=5.0)
    breaker.failure(0.0)
    breaker.failure(10.0)
    assert breaker.is_open(10.5) and not breaker.is_open(11.0)
    assert breaker.tripped  # until a success, even once the delay is over
    breaker.failure(11.0)
    assert breaker.retry_in(11.0) == 2.0
    for _ in range(10):
        breaker.failure(20.0)
    assert breaker.retry_in(20.0) == 5.0


def test_one_success_closes_it() -> None:
    breaker = CircuitBreaker(threshold=1)
    breaker.failure(0.0)
    assert breaker.is_open(0.1)
    breaker.success()
    assert not breaker.is_open(0.1) and breaker.failures == 0
