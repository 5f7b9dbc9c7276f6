"""Worker liveness in Redis: a key with a TTL, refreshed well before it expires."""

from __future__ import annotations

import contextlib
import logging
import time

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from runtimes import keys

log = logging.getLogger(__name__)

RETRY_S = 0.5
VOUCH_SHARE = 0.8  # stop vouching a little before peers can see the key expire


class Heartbeat:
    """Keeps this worker's key alive, and knows when it can no longer vouch for its runs.

    Peers take over the jobs of a worker whose key expired. Once no renewal has succeeded
    for most of the TTL, `lost` is set, so that this worker stops its runs instead of
    racing the peers that are about to re-run them.
    """

    def __init__(self, redis: Redis, worker_id: str, ttl_s: int) -> None:
        self._redis = redis
        self._key = keys.worker_heartbeat(worker_id)
        self._ttl = ttl_s
        self.renewed_at = time.monotonic()
        self.lost = anyio.Event()

    async def renew(self) -> bool:
        """One write, bounded in time (a partitioned Redis may never answer)."""
        started = time.monotonic()
        with anyio.move_on_after(self._ttl / 3):
            try:
                await self._redis.set(self._key, str(time.time()), ex=self._ttl)
            except (RedisError, OSError) as exc:
                log.warning("heartbeat not written: %s", exc)
                return self._failed()
            self.renewed_at = started
            if self.lost.is_set():
                log.info("heartbeat renewed: vouching for new runs again")
                self.lost = anyio.Event()
            return True
        log.warning("heartbeat write timed out")
        return self._failed()

    def _failed(self) -> bool:
        if time.monotonic() - self.renewed_at >= self._ttl * VOUCH_SHARE and not self.lost.is_set():
            log.error("heartbeat not renewed for %.1f s: stopping this worker's runs", self._ttl)
            self.lost.set()
        return False

    async def beat(self) -> None:
        """Renew every third of the TTL until cancelled; then delete the key."""
        try:
            while True:
                renewed = await self.renew()
                await anyio.sleep(self._ttl / 3 if renewed else RETRY_S)
        finally:
            with anyio.move_on_after(2, shield=True), contextlib.suppress(RedisError, OSError):
                await self._redis.delete(self._key)


async def alive(redis: Redis, worker_ids: list[str]) -> dict[str, bool]:
    """Which of these workers have a live heartbeat."""
    async with redis.pipeline(transaction=False) as pipe:
        for worker_id in worker_ids:
            pipe.exists(keys.worker_heartbeat(worker_id))
        replies = await pipe.execute()
    return {w: bool(r) for w, r in zip(worker_ids, replies, strict=True)}
