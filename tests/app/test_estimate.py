"""The wait estimate: pure arithmetic over the workers' load reports."""

from __future__ import annotations

from itertools import pairwise
from types import SimpleNamespace
from typing import Any

import anyio
import orjson
import pytest
from redis.asyncio import Redis

from app.estimate import LanguageLoad, WaitEstimator, estimate_wait_ms, parse_loads
from poolmgr.load import LoadReporter
from runtimes import keys


def _load(warm: int = 2, free: int = 4, slots: int = 4) -> LanguageLoad:
    return LanguageLoad(warm=warm, free=free, slots=slots, service_ms=100.0, lead_ms=300.0)


def test_no_worker_serving_the_language_is_unknown() -> None:
    assert estimate_wait_ms(0, []) is None


def test_zero_while_a_warm_container_and_a_slot_are_free() -> None:
    assert estimate_wait_ms(0, [_load(warm=1, free=1)]) == 0
    assert estimate_wait_ms(1, [_load(warm=2, free=4)]) == 0


def test_a_free_slot_without_a_warm_container_costs_a_create() -> None:
    assert estimate_wait_ms(0, [_load(warm=0, free=1)]) == 300
    assert estimate_wait_ms(2, [_load(warm=2, free=4)]) == 300
    # Every slot busy and the pool empty by its turn: a round and a create.
    assert estimate_wait_ms(4, [_load(warm=2, free=4, slots=4)]) == 400


def test_a_backlog_waits_in_rounds_of_the_workers_parallelism() -> None:
    one = estimate_wait_ms(4, [_load(warm=4, free=4, slots=4)])
    two = estimate_wait_ms(8, [_load(warm=4, free=4, slots=4)])
    assert one is not None and two is not None
    assert 100 <= one < two
    # Twice the workers: the same backlog drains in half the rounds.
    shared = estimate_wait_ms(8, [_load(warm=2, free=2, slots=2)] * 4)
    alone = estimate_wait_ms(8, [_load(warm=2, free=2, slots=2)])
    assert shared is not None and alone is not None and shared < alone


def test_monotone_in_jobs_ahead() -> None:
    loads = [_load(warm=1, free=2, slots=3), _load(warm=0, free=0, slots=2)]
    waits = [estimate_wait_ms(ahead, loads) for ahead in range(40)]
    assert all(a is not None and b is not None and a <= b for a, b in pairwise(waits))


def test_reports_are_read_per_language_and_weight() -> None:
    report = {
        "at": 1000.0,
        "slots": 8,
        "free": 4,
        "languages": {
            "java": {"warm": 1, "weight": 4, "service_ms": 150.0, "lead_ms": 900.0},
            "python": {"warm": 3, "weight": 1, "service_ms": 25.0, "lead_ms": 200.0},
        },
    }
    raw = [orjson.dumps(report), b"not json", orjson.dumps({"at": 1000.0})]
    assert parse_loads(raw, "java") == [
        LanguageLoad(warm=1, free=1, slots=2, service_ms=150.0, lead_ms=900.0)
    ]
    assert parse_loads(raw, "python")[0].free == 4
    assert parse_loads(raw, "go") == []


@pytest.mark.anyio
async def test_a_dead_workers_report_expires_by_redis_clock(redis: Redis) -> None:
    """Reports expire in Redis: a worker killed with -9 (no clean-up) drops out, and the
    app compares no clocks (a skewed worker clock made every report look stale)."""
    pools: Any = {
        "python": SimpleNamespace(
            warm=2,
            accepting=True,
            runtime=SimpleNamespace(weight=1),
            service_s=SimpleNamespace(value=0.02),
            sizer=SimpleNamespace(lead_time_s=0.3),
        )
    }
    reporter = LoadReporter(redis, "w1", pools, lambda: (4, 4))
    await reporter._write()
    estimator = WaitEstimator(redis)
    await estimator.refresh()
    assert estimator.wait_ms("python", 0) == 0
    await redis.pexpire(keys.worker_load("w1"), 1)  # as if it stopped renewing
    await anyio.sleep(0.05)
    await estimator.refresh()
    assert estimator.wait_ms("python", 0) is None
    assert await redis.smembers(keys.WORKER_LOADS) == set()


def test_odd_reports_are_skipped_not_crashed_on() -> None:
    now = 1000.0

    def report(**lang: object) -> bytes:
        base = {"warm": 1, "weight": 1, "service_ms": 20.0, "lead_ms": 300.0, **lang}
        return orjson.dumps({"at": now, "slots": 4, "free": 2, "languages": {"python": base}})

    raw = [
        report(service_ms=float("nan")).replace(b"null", b"NaN"),
        b'{"at": 1000, "slots": 4, "free": 2, "languages": {"python": {"warm": 1,'
        b' "weight": 1, "service_ms": 1e999, "lead_ms": 1}}}',
        report(warm=-5, lead_ms=-5000.0),
        report(lead_ms=1e300),
        report(weight="heavy"),
    ]
    assert parse_loads(raw, "python") == []
    assert estimate_wait_ms(0, parse_loads([report(), *raw], "python")) == 0
