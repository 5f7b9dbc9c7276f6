"""The one place a Redis client is built, for the app and the worker alike.

Every choice here is deliberate, because redis-py's defaults fail badly under load: its
pool raises "Too many connections" the moment the 101st command is in flight, and its
default retry policy keeps a caller waiting through ten attempts while Redis is down.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from runtimes.settings import Settings

POOL_WAIT_S = 5.0
"""How long a command waits for a free pooled connection before it fails (a 503 in the app).

A burst of commands beyond the pool waits its turn instead of failing at once; five
seconds is longer than any command the app or the worker holds a connection for."""

SOCKET_TIMEOUT_S = 10.0
"""How long one reply may take. Must stay above the longest blocking command: the worker's
BLPOP on a control list blocks 2 s and its XREADGROUP 1 s, and a healthy idle blocking
command must never be mistaken for a dead server. The margin covers a slow reply (a big
LRANGE, a Redis busy with an fsync) without letting a dead peer hang a caller for long."""

CONNECT_TIMEOUT_S = 5.0
HEALTH_CHECK_S = 30
"""A connection idle for longer is PINGed before use, so one that a restart, a proxy or NAT
dropped silently fails there and is replaced, not in the middle of a command."""

RETRIES = 2
"""Connection errors only (a reset socket, a Redis restart), twice, with jittered backoff
of at most 0.5 s: enough to ride over a reconnect, short enough that a real outage reaches
the caller (503 in the app, the worker's own retry loop) within a second. Timeouts are not
retried: the command may have run, and waiting another 10 s helps nobody."""


def connect(url: str, settings: Settings) -> Redis:
    """A client for `url` with a blocking pool of `settings.redis_max_connections`."""
    options: dict[str, object] = {}
    if not url.startswith("unix://"):
        options["socket_keepalive"] = True  # TCP only: finds a dead peer between commands
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=POOL_WAIT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        health_check_interval=HEALTH_CHECK_S,
        retry=Retry(
            ExponentialWithJitterBackoff(cap=0.5, base=0.05),
            RETRIES,
            supported_errors=(RedisConnectionError,),
        ),
        **options,
    )
    return Redis.from_pool(pool)
