"""The heartbeat: a full Redis still takes it; a Redis that does not answer makes the worker
stop its runs on time, before its key can expire, whatever a hung renewal is doing."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from poolmgr.heartbeat import VOUCH_SHARE, Heartbeat

pytestmark = pytest.mark.anyio


@pytest.fixture
def blackhole(tmp_path: Path) -> Iterator[str]:
    """A unix socket that accepts connections and never answers: a partitioned Redis."""
    path = tmp_path / "blackhole.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen(16)
        yield f"unix://{path}"


async def test_a_full_redis_still_takes_the_heartbeat(redis: Redis) -> None:
    heartbeat = Heartbeat(redis, "full", ttl_s=5)
    assert await heartbeat.renew()
    await redis.config_set("maxmemory-policy", "noeviction")
    await redis.config_set("maxmemory", "3mb")
    with pytest.raises(ResponseError, match="maxmemory"):
        for i in range(10_000):
            await redis.set(f"filler:{i}", "x" * 4096)
    assert await heartbeat.renew(), "a full Redis must not make every worker drop its runs"
    assert not heartbeat.lost.is_set()


async def test_runs_stop_on_time_while_a_renewal_hangs(blackhole: str) -> None:
    client = Redis.from_url(blackhole, socket_timeout=30)
    ttl = 3
    heartbeat = Heartbeat(client, "partitioned", ttl_s=ttl)
    heartbeat.renewed_at = time.monotonic() - ttl * VOUCH_SHARE + 0.3  # due in 0.3 s
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(heartbeat.beat)  # its first renewal hangs for ttl / 3 = 1 s
        with anyio.fail_after(0.8):
            await heartbeat.lost.wait()
        stopped_after = time.monotonic() - started
        tg.cancel_scope.cancel()
    assert stopped_after < 0.8
    await client.aclose()
