"""The wait estimate: pure arithmetic over the workers' load reports."""

from __future__ import annotations

from itertools import pairwise

import orjson

from app.estimate import STALE_S, LanguageLoad, estimate_wait_ms, parse_loads


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


def test_reports_are_read_per_language_weight_and_freshness() -> None:
    now = 1000.0
    report = {
        "at": now - 0.2,
        "slots": 8,
        "free": 4,
        "languages": {
            "java": {"warm": 1, "weight": 4, "service_ms": 150.0, "lead_ms": 900.0},
            "python": {"warm": 3, "weight": 1, "service_ms": 25.0, "lead_ms": 200.0},
        },
    }
    stale = {**report, "at": now - STALE_S - 1}
    raw = {
        b"w1": orjson.dumps(report),
        b"w2": orjson.dumps(stale),
        b"w3": b"not json",
        b"w4": orjson.dumps({"at": now}),
    }
    assert parse_loads(raw, "java", now) == [
        LanguageLoad(warm=1, free=1, slots=2, service_ms=150.0, lead_ms=900.0)
    ]
    assert parse_loads(raw, "python", now)[0].free == 4
    assert parse_loads(raw, "go", now) == []
