"""The one place a Redis client is built, for the app and the worker alike.

Every choice here is deliberate, because redis-py's defaults fail badly under load: its
pool raises "Too many connections" the moment the 101st command is in flight, and its
default retry policy keeps a caller waiting through ten attempts while Redis is down.
"""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
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


CLUSTER_SCHEME = "redis+cluster://"
"""`redis+cluster://host:port` (any node; the others are discovered): a Redis Cluster."""


def sharded(redis: Redis) -> bool:
    """Whether `redis` is a cluster, where one command touches keys of one hash slot only."""
    return isinstance(redis, RedisCluster)


def _options(settings: Settings) -> dict[str, Any]:
    """What every connection gets, on one Redis or on each node of a cluster."""
    return {
        "max_connections": settings.redis_max_connections,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "health_check_interval": HEALTH_CHECK_S,
        "retry": Retry(
            ExponentialWithJitterBackoff(cap=0.5, base=0.05),
            RETRIES,
            supported_errors=(RedisConnectionError,),
        ),
    }


def connect(url: str, settings: Settings) -> Redis:
    """A client for `url` with a blocking pool of `settings.redis_max_connections`, or, for
    a `redis+cluster://` URL, a cluster client with a pool of that size per node."""
    if url.startswith(CLUSTER_SCHEME):
        return _cluster(url.replace(CLUSTER_SCHEME, "redis://", 1), settings)
    # TCP only: keepalive finds a dead peer between commands
    keepalive = {} if url.startswith("unix://") else {"socket_keepalive": True}
    pool = BlockingConnectionPool.from_url(
        url, timeout=POOL_WAIT_S, **_options(settings), **keepalive
    )
    return Redis.from_pool(pool)


def _cluster(url: str, settings: Settings) -> Redis:
    """A cluster client. It serves the same commands as a `Redis` and is typed as one, so
    the code above has one client type; the layout of the keys (runtimes/keys.py) keeps
    every script and transaction in one slot, and where one command would span slots (the
    worker's reads of several languages' streams) `sharded` tells the caller to split it."""
    client = RedisCluster.from_url(url, socket_keepalive=True, **_options(settings))
    return cast(Redis, client)
