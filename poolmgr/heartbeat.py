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
    for VOUCH_SHARE of the TTL, `lost` is set (by a timer, not by a renewal that may hang),
    so that this worker stops its runs before its peers may re-run them. A renewal is an
    EXPIRE of the existing key, which Redis accepts even at its memory limit (noeviction
    refuses only writes that grow memory): a full Redis must not stop every worker.
    """

    def __init__(self, redis: Redis, worker_id: str, ttl_s: int) -> None:
        self._redis = redis
        self._key = keys.worker_heartbeat(worker_id)
        self._ttl = ttl_s
        self.renewed_at = time.monotonic()
        self.lost = anyio.Event()

    async def renew(self) -> bool:
        """One renewal, bounded in time (a partitioned Redis may never answer)."""
        started = time.monotonic()
        with anyio.move_on_after(self._ttl / 3):
            try:
                if not await self._redis.expire(self._key, self._ttl):
                    await self._redis.set(self._key, str(time.time()), ex=self._ttl)
            except (RedisError, OSError) as exc:
                log.warning("heartbeat not written: %s", exc)
                return False
            self.renewed_at = started
            if self.lost.is_set():
                log.info("heartbeat renewed: vouching for new runs again")
                self.lost = anyio.Event()
            return True
        log.warning("heartbeat write timed out")
        return False

    async def beat(self) -> None:
        """Renew every third of the TTL until cancelled; then delete the key."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch)
                while True:
                    renewed = await self.renew()
                    await anyio.sleep(self._ttl / 3 if renewed else RETRY_S)
        finally:
            with anyio.move_on_after(2, shield=True), contextlib.suppress(RedisError, OSError):
                await self._redis.delete(self._key)

    async def _watch(self) -> None:
        """Set `lost` once VOUCH_SHARE of the TTL has passed since the last renewal."""
        while True:
            due = self.renewed_at + self._ttl * VOUCH_SHARE
            if time.monotonic() < due:
                await anyio.sleep(due - time.monotonic())
            elif not self.lost.is_set():
                log.error("heartbeat not renewed for %.1f s: stopping this worker's runs",
                          self._ttl * VOUCH_SHARE)  # fmt: skip
                self.lost.set()
            else:
                await anyio.sleep(RETRY_S)


async def alive(redis: Redis, worker_ids: list[str]) -> dict[str, bool]:
    """Which of these workers have a live heartbeat."""
    async with redis.pipeline(transaction=False) as pipe:
        for worker_id in worker_ids:
            pipe.exists(keys.worker_heartbeat(worker_id))
        replies = await pipe.execute()
    return {w: bool(r) for w, r in zip(worker_ids, replies, strict=True)}
