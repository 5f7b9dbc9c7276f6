"""`estimated_wait_ms`: how long a newly accepted job waits before its program starts.

From the workers' load reports (warm containers, free slots, mean service time and
create lead time per language) and the number of jobs queued ahead of it:
- waiting for a slot: 0 while one is free for it, else rounds of the workers' parallelism
  (slots), each one mean service time;
- plus one create lead time when the jobs ahead take every warm container.
So 0 while a warm container and a slot are free for it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, cast

import anyio
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from runtimes import keys

log = logging.getLogger(__name__)

MAX_REPORTED_MS = 3_600_000.0
REFRESH_S = 0.25  # reports are written every 0.5 s


@dataclass(frozen=True)
class LanguageLoad:
    """One worker's capacity for one language, in jobs of that language."""

    warm: int
    free: int
    slots: int
    service_ms: float
    lead_ms: float


def estimate_wait_ms(ahead: int, loads: list[LanguageLoad]) -> int | None:
    """The wait of a job with `ahead` jobs of its language before it; None when no worker
    serves the language (it waits until one does)."""
    if not loads:
        return None
    warm = sum(load.warm for load in loads)
    free = sum(load.free for load in loads)
    slots = max(1, sum(load.slots for load in loads))
    create = max(load.lead_ms for load in loads) if ahead >= warm else 0.0
    if ahead < free:
        return math.ceil(create)
    service = sum(load.service_ms * load.slots for load in loads) / slots
    rounds = (ahead - free) // slots + 1
    return math.ceil(rounds * service + create)


def _sane(load: LanguageLoad) -> bool:
    """A report from a buggy or hostile writer must not turn into a crash or a negative
    wait: counts non-negative, times finite and within an hour."""
    times = (load.service_ms, load.lead_ms)
    return min(load.warm, load.free) >= 0 and all(
        math.isfinite(t) and 0 <= t <= MAX_REPORTED_MS for t in times
    )


def parse_loads(reports: list[bytes], language: str) -> list[LanguageLoad]:
    """The reports' loads for `language`; unreadable or insane reports are skipped."""
    out = []
    for value in reports:
        try:
            report: dict[str, Any] = orjson.loads(value)
            lang = report["languages"].get(language)
            if lang is None:
                continue
            weight = max(1, int(lang["weight"]))
            load = LanguageLoad(
                warm=int(lang["warm"]),
                free=int(report["free"]) // weight,
                slots=max(1, int(report["slots"]) // weight),
                service_ms=float(lang["service_ms"]),
                lead_ms=float(lang["lead_ms"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            continue
        except OverflowError:
            continue
        if _sane(load):
            out.append(load)
    return out


class WaitEstimator:
    """Keeps the workers' reports fresh in the background (every REFRESH_S), so that an
    estimate costs a submission no round trip. Reports expire in Redis (REPORT_TTL_MS of
    poolmgr/load.py), so a dead worker's drops out without comparing clocks."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._reports: list[bytes] = []

    async def refresh(self) -> None:
        """Read every live report; forget the ids whose report has expired."""
        ids = sorted(cast(set[bytes], await self._redis.smembers(keys.WORKER_LOADS)))
        if not ids:
            self._reports = []
            return
        values = cast(
            list[bytes | None], await self._redis.mget([keys.worker_load(i.decode()) for i in ids])
        )
        gone = [i for i, v in zip(ids, values, strict=True) if v is None]
        if gone:
            await self._redis.srem(keys.WORKER_LOADS, *gone)
        self._reports = [v for v in values if v is not None]

    async def run(self) -> None:
        """Refresh until cancelled; after a failed read the last reports are kept."""
        while True:
            try:
                await self.refresh()
            except (RedisError, OSError) as exc:
                log.debug("worker load reports not read: %s", exc)
            await anyio.sleep(REFRESH_S)

    def wait_ms(self, language: str, ahead: int) -> int | None:
        return estimate_wait_ms(ahead, parse_loads(self._reports, language))
