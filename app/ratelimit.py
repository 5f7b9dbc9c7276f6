"""The per-user token bucket, kept in Redis so that every app process draws on one bucket."""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

from runtimes import keys

# KEYS: bucket. ARGV: burst, refill per second.
# The clock is Redis's own (TIME), so app processes with skewed clocks share one bucket
# fairly. Replies {allowed (1/0), tokens left as a string (Lua numbers are truncated)}.
_TAKE = """
local burst, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.min(math.ceil(burst / rate) + 1, 86400))
return {allowed, tostring(tokens)}
"""


@dataclass(frozen=True)
class Verdict:
    """One request's draw on its bucket, and what the rate-limit headers say about it."""

    allowed: bool
    limit: int
    tokens: float
    rate_per_s: float

    @property
    def headers(self) -> dict[str, str]:
        """`X-RateLimit-Reset`: seconds until the bucket is full again."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(math.floor(self.tokens)),
            "X-RateLimit-Reset": str(math.ceil((self.limit - self.tokens) / self.rate_per_s)),
        }

    @property
    def retry_after_s(self) -> int:
        """Seconds until the next request would be allowed."""
        return max(1, math.ceil((1 - self.tokens) / self.rate_per_s))


class RateLimiter:
    """`burst` requests at once, refilled at `rate_per_s`; off when either is 0."""

    def __init__(self, redis: Redis, burst: int, rate_per_s: float) -> None:
        self._burst, self._rate = burst, rate_per_s
        self._take = redis.register_script(_TAKE)

    @property
    def enabled(self) -> bool:
        return self._burst > 0 and self._rate > 0

    async def take(self, user: str) -> Verdict | None:
        """Draw one token for `user`; None when rate limiting is off."""
        if not self.enabled:
            return None
        allowed, tokens = await self._take(
            keys=[keys.rate_bucket(user)], args=[self._burst, self._rate]
        )
        return Verdict(bool(allowed), self._burst, float(tokens), self._rate)
