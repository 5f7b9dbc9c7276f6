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


async def beat(redis: Redis, worker_id: str, ttl_s: int) -> None:
    """Refresh this worker's heartbeat every third of its TTL, until cancelled."""
    key = keys.worker_heartbeat(worker_id)
    try:
        while True:
            try:
                await redis.set(key, str(time.time()), ex=ttl_s)
            except (RedisError, OSError) as exc:
                log.warning("heartbeat not written: %s", exc)
                await anyio.sleep(RETRY_S)  # back as soon as Redis is, before peers reap us
                continue
            await anyio.sleep(ttl_s / 3)
    finally:
        with anyio.CancelScope(shield=True), contextlib.suppress(RedisError, OSError):
            await redis.delete(key)


async def alive(redis: Redis, worker_ids: list[str]) -> dict[str, bool]:
    """Which of these workers have a live heartbeat."""
    async with redis.pipeline(transaction=False) as pipe:
        for worker_id in worker_ids:
            pipe.exists(keys.worker_heartbeat(worker_id))
        replies = await pipe.execute()
    return {w: bool(r) for w, r in zip(worker_ids, replies, strict=True)}
