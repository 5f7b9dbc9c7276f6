"""One shared pub/sub connection per app process, fanned out to every local watcher."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from runtimes import keys

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT_S = 5.0
FEED_LIMIT_BYTES = 256 * 1024
"""What one watcher may fall behind by before its live events are dropped. Far more than a
client that keeps up ever holds, far less than an execution's whole output (the replay log)."""


class SubscribeTimeout(RedisTimeoutError):
    """Redis did not confirm a subscription in time: handled as any Redis timeout (503, 1013)."""


class Feed:
    """One watcher's live events, at most `limit_bytes` of them waiting.

    The shared reader never waits for a watcher: when a slow one (a client that does not
    read) is `limit_bytes` behind, what was waiting is dropped and the watcher is told so
    once, to catch up from the replay log, which holds every output frame.
    """

    def __init__(self, limit_bytes: int) -> None:
        self._limit = limit_bytes
        self._events: deque[bytes] = deque()
        self._size = 0
        self._dropped = False
        self._ready = anyio.Event()

    def put(self, raw: bytes) -> None:
        if self._events and self._size + len(raw) > self._limit:
            self._events.clear()
            self._size, self._dropped = 0, True
        self._events.append(raw)
        self._size += len(raw)
        self._ready.set()

    async def get(self) -> bytes | None:
        """The next live event, or None (once) after events were dropped."""
        while not self._events and not self._dropped:
            self._ready = anyio.Event()
            await self._ready.wait()
        if self._dropped:
            self._dropped = False
            return None
        raw = self._events.popleft()
        self._size -= len(raw)
        return raw


class Relay:
    """Subscribes a channel once however many WebSockets watch it."""

    def __init__(self, redis: Redis, feed_limit_bytes: int = FEED_LIMIT_BYTES) -> None:
        self._pubsub = redis.pubsub()
        self._feed_limit = feed_limit_bytes
        self._watchers: dict[str, set[Feed]] = {}
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
            for feed in self._watchers.get(name, ()):
                feed.put(data)

    @asynccontextmanager
    async def watch(self, execution_id: str) -> AsyncIterator[Feed]:
        """Live events of one execution; subscribed (confirmed) before this yields."""
        channel = keys.events(execution_id)
        feed = Feed(self._feed_limit)
        watchers = self._watchers.setdefault(channel, set())
        watchers.add(feed)
        try:
            if channel not in self._subscribed:
                self._subscribed[channel] = anyio.Event()
                await self._pubsub.subscribe(channel)
                self._any.set()
            confirmed = self._subscribed[channel]
            with anyio.move_on_after(SUBSCRIBE_TIMEOUT_S):
                await confirmed.wait()
            if not confirmed.is_set():
                raise SubscribeTimeout(f"{channel} not confirmed in {SUBSCRIBE_TIMEOUT_S} s")
            yield feed
        finally:
            watchers.discard(feed)
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
