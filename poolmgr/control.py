"""Relays an execution's control messages (stdin, end of stdin, kill) from Redis to its container.

The app appends them to a per-execution list, so what a user types while the execution is
still queued is kept and delivered, in order, once it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

import anyio
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from poolmgr.container import Container
from runtimes import keys

log = logging.getLogger(__name__)

RETRY_S = 0.5
BLOCK_S = 2  # well below the clients' socket timeout (runtimes/redis_client.py)


async def relay_control(
    redis: Redis, execution_id: str, container: Container, on_kill: Callable[[], None]
) -> None:
    """Deliver control messages until cancelled (the run's end cancels it)."""
    key = keys.control(execution_id)
    while True:
        try:
            reply = await redis.blpop([key], timeout=BLOCK_S)
        except (RedisError, OSError) as exc:  # Redis restarting: the program runs on
            log.warning("execution=%s control unavailable: %s", execution_id, exc)
            await anyio.sleep(RETRY_S)
            continue
        if reply is None:
            continue
        message = orjson.loads(cast(tuple[bytes, bytes], reply)[1])
        kind = message.get("type")
        if kind == "kill":
            on_kill()
            return
        if kind == "stdin":
            try:
                if isinstance(message.get("data"), str):
                    await container.send_stdin(message["data"].encode())
                if message.get("eof") is True:
                    await container.close_stdin()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return  # the program has ended: nobody is left to read it
        else:
            log.warning("execution=%s ignoring control message %r", execution_id, kind)
