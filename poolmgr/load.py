"""What this worker can take on right now, published for the app's `estimated_wait_ms`."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping

import anyio
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from poolmgr.pool import Pool
from runtimes import keys

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 0.5
"""Warm counts change with every claim; a report this fresh is close enough for an estimate
and costs Redis two writes a second per worker."""
REPORT_TTL_MS = 3000  # a worker that stopped reporting (killed, partitioned) drops out


class LoadReporter:
    """Writes this worker's load report to Redis while it runs: per language its
    warm containers, weight, mean service time and create lead time, and its free slots."""

    def __init__(
        self,
        redis: Redis,
        worker_id: str,
        pools: Mapping[str, Pool],
        slots: Callable[[], tuple[int, int]],
    ) -> None:
        self._redis = redis
        self._worker_id = worker_id
        self._pools = pools
        self._slots = slots  # (total, free) in weight units

    def report(self) -> bytes:
        total, free = self._slots()
        return orjson.dumps(
            {
                "at": time.time(),
                "slots": total,
                "free": free,
                "languages": {
                    language: {
                        "warm": pool.warm,
                        "weight": pool.runtime.weight,
                        "service_ms": round(pool.service_s.value * 1e3, 1),
                        "lead_ms": round(pool.sizer.lead_time_s * 1e3, 1),
                    }
                    for language, pool in self._pools.items()
                    if pool.accepting
                },
            }
        )

    async def _write(self) -> None:
        """The report, expiring after REPORT_TTL_MS by Redis's own clock."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.worker_load(self._worker_id), self.report(), px=REPORT_TTL_MS)
            pipe.sadd(keys.WORKER_LOADS, self._worker_id)
            await pipe.execute()

    async def run(self) -> None:
        """Report every REPORT_INTERVAL_S until cancelled; then withdraw the report."""
        try:
            while True:
                try:
                    await self._write()
                except (RedisError, OSError) as exc:  # an estimate is not worth a retry loop
                    log.debug("load report not written: %s", exc)
                await anyio.sleep(REPORT_INTERVAL_S)
        finally:
            # If this fails the app ignores the report once it is a few intervals old.
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(2),
                contextlib.suppress(RedisError, OSError),
            ):
                await self._redis.delete(keys.worker_load(self._worker_id))
