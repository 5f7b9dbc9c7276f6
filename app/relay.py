"""One shared pub/sub connection per app process, fanned out to every local watcher."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from runtimes import keys

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT_S = 5.0


class Relay:
    """Subscribes a channel once however many WebSockets watch it.

    Buffers are unbounded on purpose: an execution's output is capped by the worker,
    so a slow watcher holds at most one execution's output, and the shared reader
    never blocks on it.
    """

    def __init__(self, redis: Redis) -> None:
        self._pubsub = redis.pubsub()
        self._watchers: dict[str, set[MemoryObjectSendStream[bytes]]] = {}
        self._subscribed: dict[str, anyio.Event] = {}
        self._any = anyio.Event()

    async def run(self) -> None:
        """Dispatch messages until cancelled."""
        while True:
            await self._any.wait()
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisConnectionError, OSError) as exc:
                log.warning("pub/sub connection lost (%s); retrying", exc)
                await anyio.sleep(0.5)
                continue
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, object]) -> None:
        channel = message["channel"]
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if message["type"] == "subscribe":
            if name in self._subscribed:
                self._subscribed[name].set()
        elif message["type"] == "message":
            data = message["data"]
            assert isinstance(data, bytes)
            for send in self._watchers.get(name, ()):
                send.send_nowait(data)

    @asynccontextmanager
    async def watch(self, execution_id: str) -> AsyncIterator[MemoryObjectReceiveStream[bytes]]:
        """Live events of one execution; subscribed (confirmed) before this yields."""
        channel = keys.events(execution_id)
        send, receive = anyio.create_memory_object_stream[bytes](math.inf)
        watchers = self._watchers.setdefault(channel, set())
        watchers.add(send)
        try:
            if channel not in self._subscribed:
                self._subscribed[channel] = anyio.Event()
                await self._pubsub.subscribe(channel)
                self._any.set()
            with anyio.fail_after(SUBSCRIBE_TIMEOUT_S):
                await self._subscribed[channel].wait()
            yield receive
        finally:
            watchers.discard(send)
            send.close()
            receive.close()
            if not watchers:
                del self._watchers[channel]
                self._subscribed.pop(channel, None)
                with anyio.CancelScope(shield=True):
                    try:
                        await self._pubsub.unsubscribe(channel)
                    except (RedisError, OSError) as exc:  # Redis away: forget it locally
                        log.warning("unsubscribe %s failed: %s", channel, exc)
                        self._pubsub.channels.pop(channel.encode(), None)

    async def aclose(self) -> None:
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
