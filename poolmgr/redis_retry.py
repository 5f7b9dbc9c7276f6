"""Writes that must survive a Redis restart: retried while Redis is unreachable."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

T = TypeVar("T")
LIMIT_S = 60.0


async def until_redis(op: Callable[[], Awaitable[T]], what: str, limit_s: float = LIMIT_S) -> T:
    """Run `op`, retrying with backoff for up to `limit_s` while Redis cannot be reached.

    A retried append may land twice; readers drop output frames by `seq`, and status
    writes are idempotent scripts, so a duplicate is harmless where a loss is not.
    """
    deadline = time.monotonic() + limit_s
    delay = 0.1
    while True:
        try:
            return await op()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("redis unreachable while %s (%s); retrying in %.1f s", what, exc, delay)
            await anyio.sleep(delay)
            delay = min(delay * 2, 2.0)
