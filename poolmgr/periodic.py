"""Background upkeep that runs every few seconds and survives a failed pass."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from redis.exceptions import RedisError

from poolmgr.engine_errors import EngineError

log = logging.getLogger(__name__)


async def every(interval_s: float, what: str, work: Callable[[], Awaitable[object]]) -> None:
    """Run `work` every `interval_s` until cancelled; a pass that fails is logged and skipped."""
    while True:
        await anyio.sleep(interval_s)
        try:
            await work()
        except (EngineError, RedisError, OSError) as exc:
            log.warning("%s pass skipped: %s", what, exc)
