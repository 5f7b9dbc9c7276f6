"""The token bucket script on a real Redis."""

from __future__ import annotations

import anyio
import pytest
from redis.asyncio import Redis

from app.ratelimit import RateLimiter
from runtimes import keys

pytestmark = pytest.mark.anyio


async def test_burst_then_refused_then_refilled(redis: Redis) -> None:
    limiter = RateLimiter(redis, burst=3, rate_per_s=10.0)
    verdicts = [await limiter.take("ann") for _ in range(4)]
    assert [v.allowed for v in verdicts if v] == [True, True, True, False]
    refused = verdicts[-1]
    assert refused is not None
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.retry_after_s == 1
    await anyio.sleep(0.25)  # 10 per second: two tokens back
    allowed = await limiter.take("ann")
    assert allowed is not None and allowed.allowed
    assert allowed.headers["X-RateLimit-Remaining"] == "1"


async def test_users_have_their_own_buckets(redis: Redis) -> None:
    limiter = RateLimiter(redis, burst=1, rate_per_s=0.01)
    first, second, other = [await limiter.take(u) for u in ("ann", "ann", "bob")]
    assert first and first.allowed and second and not second.allowed and other and other.allowed
    assert second.retry_after_s == 100


async def test_two_limiters_share_one_bucket(redis: Redis) -> None:
    """Two app processes (two clients of one Redis) draw on the same tokens."""
    a = RateLimiter(redis, burst=4, rate_per_s=0.01)
    other = Redis(connection_pool=redis.connection_pool)
    b = RateLimiter(other, burst=4, rate_per_s=0.01)
    allowed = [(await (a if i % 2 else b).take("ann")) for i in range(6)]
    assert [v.allowed for v in allowed if v] == [True] * 4 + [False] * 2


async def test_off_when_the_rate_is_zero(redis: Redis) -> None:
    limiter = RateLimiter(redis, burst=10, rate_per_s=0.0)
    assert not limiter.enabled
    assert await limiter.take("ann") is None
    assert await redis.keys("*") == []


async def test_a_tiny_rate_still_answers(redis: Redis) -> None:
    """A bucket that refills once in years: its key's expiry is bounded (it overflowed
    EXPIRE's argument, and every request failed with 500)."""
    limiter = RateLimiter(redis, burst=2, rate_per_s=1e-19)
    first = await limiter.take("ann")
    assert first is not None and first.allowed
    assert 0 < await redis.ttl(keys.rate_bucket("ann")) <= 86400
