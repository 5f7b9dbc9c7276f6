"""The engine adapter against an engine that misbehaves: every failure is an `EngineError`, a
hung engine times out within the configured deadline, trips the pool's breaker and makes the
worker not ready; and against the real engine, a container removed behind the adapter's back."""

from __future__ import annotations

import contextlib
import gc
import io
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Literal

import anyio
import pytest
from anyio.abc import SocketStream
from redis.asyncio import Redis

from poolmgr.engine import DEFAULT_TIMEOUTS, Engine, EngineTimeouts
from poolmgr.engine_errors import EngineError, EngineTimeout
from poolmgr.pool import Pool, PoolUnavailable
from poolmgr.sandbox import container_config
from poolmgr.worker import Worker
from runtimes.registry import RUNTIMES
from runtimes.settings import PoolPolicy, Settings

pytestmark = pytest.mark.anyio

Fault = Literal["reset", "cut", "garbage", "hang"]
FAST = EngineTimeouts(ping_s=0.3, quick_s=0.3, slow_s=0.3, build_s=0.3)
SLACK_S = 1.5  # scheduling noise on a busy test machine

CALLS: dict[str, Callable[[Engine], Awaitable[object]]] = {
    "create": lambda e: e.create({"Image": "coderunner-python:3.11"}),
    "start": lambda e: e.start("c0ffee"),
    "remove": lambda e: e.remove("c0ffee"),
    "set_memory": lambda e: e.set_memory("c0ffee", 128),
    "inspect": lambda e: e.inspect("c0ffee"),
    "list_labelled": lambda e: e.list_labelled({"code-runner": ""}),
    "list_ids": lambda e: e.list_ids({"code-runner": ""}),
    "image_id": lambda e: e.image_id("coderunner-python:3.11"),
    "image_labels": lambda e: e.image_labels("coderunner-python:3.11"),
    "attach": lambda e: e.attach("c0ffee"),
    "build": lambda e: e.build(io.BytesIO(b"not a tar"), "t:1", {}, {}, lambda _: None),
    "pull": lambda e: e.pull("debian:bookworm"),
}
# aiodocker leaves the connection of a cut-off progress stream to the garbage collector.
_STREAM_CUTS = {("cut", "build"), ("cut", "pull")}
_LEAKS = pytest.mark.filterwarnings("ignore:Unclosed connection:ResourceWarning")
# Real engines answer start and remove with 204 and no body: nothing to cut off or garble.
BROKEN = [
    pytest.param(fault, call, marks=[_LEAKS] if (fault, call) in _STREAM_CUTS else [])
    for fault in ("reset", "cut", "garbage")
    for call in sorted(CALLS)
    if fault == "reset" or call not in {"start", "remove"}
]


def _answer(body: bytes, length: int | None = None) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    )
    return head.encode() + body


async def _request_line(conn: SocketStream) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += await conn.receive()
    return buf.split(b"\r\n", 1)[0]


async def _serve(fault: Fault, version_told: list[bool], conn: SocketStream) -> None:
    """Tell the API version like an engine (so the fault hits the call itself), then fail."""
    async with conn:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            if fault == "reset" and version_told:
                return  # closed with the request unread: the client sees a reset connection
            line = await _request_line(conn)
            if line.split(b" ")[1] == b"/version":
                version_told.append(True)
                await conn.send(_answer(b'{"ApiVersion": "1.41"}'))
            elif fault == "cut":
                await conn.send(_answer(b'{"Id": "c0ff', length=64))
            elif fault == "garbage":
                await conn.send(_answer(b'{"Id": c0ffee'))
            elif fault == "hang":
                await anyio.sleep_forever()


@asynccontextmanager
async def fake_engine(tmp_path: Path, fault: Fault) -> AsyncIterator[str]:
    """A docker URL whose engine misbehaves as `fault` says."""
    path = tmp_path / "engine.sock"
    listener = await anyio.create_unix_listener(path)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, partial(_serve, fault, []))
        yield f"unix://{path}"
        tg.cancel_scope.cancel()


async def _fails_with_engine_error(url: str, call: str) -> None:
    async with Engine(url, FAST) as engine:
        with pytest.raises(EngineError):
            await CALLS[call](engine)
        assert not await engine.ping()
    gc.collect()  # whatever the call left unclosed is reported here, not in a later test


@pytest.mark.parametrize(("fault", "call"), BROKEN)
async def test_a_broken_answer_is_an_engine_error(tmp_path: Path, fault: Fault, call: str) -> None:
    async with fake_engine(tmp_path, fault) as url:
        await _fails_with_engine_error(url, call)


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_no_engine_at_all_is_an_engine_error(tmp_path: Path, call: str) -> None:
    await _fails_with_engine_error(f"unix://{tmp_path}/absent.sock", call)


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_a_hung_engine_times_out_within_the_deadline(tmp_path: Path, call: str) -> None:
    async with fake_engine(tmp_path, "hang") as url, Engine(url, FAST) as engine:
        started = time.monotonic()
        with pytest.raises(EngineTimeout):
            await CALLS[call](engine)
        assert time.monotonic() - started < FAST.slow_s + SLACK_S
        started = time.monotonic()
        assert not await engine.ping()
        assert time.monotonic() - started < FAST.ping_s + SLACK_S


async def test_a_hung_engine_trips_the_pool_breaker(tmp_path: Path) -> None:
    policy = PoolPolicy(min=3, max=3)
    async with fake_engine(tmp_path, "hang") as url, Engine(url, FAST) as engine:
        settings = Settings(docker_url=url, pool_policies={"python": policy})
        pool = Pool(RUNTIMES["python"], engine, settings, anyio.CapacityLimiter(2))
        async with anyio.create_task_group() as tg:
            await tg.start(pool.run)
            with anyio.fail_after(10):  # polled: the pool has no event for tests to wait on
                while pool.accepting:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            assert pool.breaker.tripped and pool.warm == 0
            with pytest.raises(PoolUnavailable):
                await pool.cold_start()
            tg.cancel_scope.cancel()


async def test_a_hung_engine_makes_the_worker_not_ready(tmp_path: Path) -> None:
    redis = Redis.from_url("redis://127.0.0.1:9")  # never reached: readiness asks the engine
    async with fake_engine(tmp_path, "hang") as url:
        worker = Worker(Settings(docker_url=url), redis)
        try:
            started = time.monotonic()
            assert not await worker.ready()
            assert time.monotonic() - started < DEFAULT_TIMEOUTS.ping_s + SLACK_S
        finally:
            await worker.engine.aclose()
            await redis.aclose()


async def test_a_container_removed_behind_its_back_ends_its_stream() -> None:
    settings = Settings(worker_id=f"test-engine-{uuid.uuid4().hex[:8]}")
    async with Engine(settings.docker_url) as engine:
        container_id = await engine.create(container_config(RUNTIMES["python"], settings))
        stream = await engine.attach(container_id)
        try:
            await engine.start(container_id)
            await engine.remove(container_id)
            await anyio.sleep(0.5)  # the engine has closed the stream; nobody has read it yet
            with pytest.raises((anyio.BrokenResourceError, anyio.ClosedResourceError)):
                await stream.send(b"hello")
            with anyio.fail_after(5):
                async for _ in stream.chunks():
                    pass
            assert stream.closed
        finally:
            await stream.aclose()
            await engine.remove(container_id)
