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
import time
from dataclasses import dataclass
from typing import Any, cast

import anyio
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from runtimes import keys

log = logging.getLogger(__name__)

STALE_S = 3.0  # a report older than this is a worker that stopped or lost Redis
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


def parse_loads(raw: dict[bytes, bytes], language: str, now: float) -> list[LanguageLoad]:
    """The fresh reports' loads for `language`; unreadable or stale reports are skipped."""
    out = []
    for value in raw.values():
        try:
            report: dict[str, Any] = orjson.loads(value)
            if now - float(report["at"]) > STALE_S:
                continue
            lang = report["languages"].get(language)
            if lang is None:
                continue
            weight = max(1, int(lang["weight"]))
            out.append(
                LanguageLoad(
                    warm=int(lang["warm"]),
                    free=int(report["free"]) // weight,
                    slots=max(1, int(report["slots"]) // weight),
                    service_ms=float(lang["service_ms"]),
                    lead_ms=float(lang["lead_ms"]),
                )
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            continue
    return out


class WaitEstimator:
    """Keeps the workers' reports fresh in the background (one HGETALL every REFRESH_S), so
    that an estimate costs a submission no round trip."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._raw: dict[bytes, bytes] = {}

    async def run(self) -> None:
        """Refresh the reports until cancelled; a failed read keeps the last ones (they age
        out by their own timestamps)."""
        while True:
            try:
                self._raw = cast(dict[bytes, bytes], await self._redis.hgetall(keys.WORKER_LOAD))
            except (RedisError, OSError) as exc:
                log.debug("worker load reports not read: %s", exc)
            await anyio.sleep(REFRESH_S)

    def wait_ms(self, language: str, ahead: int) -> int | None:
        return estimate_wait_ms(ahead, parse_loads(self._raw, language, time.time()))
