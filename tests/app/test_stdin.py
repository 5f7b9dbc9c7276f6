"""Stdin has a total cap per execution, the request's stdin included, and ends at eof."""

from __future__ import annotations

import json

import orjson
import pytest
from redis.asyncio import Redis

from app.commands import parse_command
from app.executions import STDIN_CLOSED, STDIN_LIMIT, STDIN_OK, ExecutionStore
from runtimes import keys, wire
from runtimes.settings import Settings
from tests.client import Client

COUNTER = "import sys\ndata = sys.stdin.read()\nprint(len(data), set(data) == set('xz'))"


def _stdin(data: str | None, eof: bool = False) -> bytes:
    return orjson.dumps({"type": "stdin", "data": data, "eof": eof})


@pytest.mark.anyio
async def test_the_store_counts_stdin_atomically_and_refuses_past_the_cap(redis: Redis) -> None:
    store = ExecutionStore(redis, ttl_s=60, max_stdin_bytes=10)
    job = wire.Job(keys.new_execution_id("python"), "python", (), stdin="abc", interactive=True)
    await store.submit(job, max_concurrent=0, max_depth=0)
    eid = job.execution_id

    async def send(data: str | None, eof: bool = False) -> str:
        size = len(data.encode()) if data else 0
        return await store.send_stdin(eid, _stdin(data, eof), size, eof)

    assert await send("12345") == STDIN_OK  # 3 + 5
    assert await send("678") == STDIN_LIMIT  # 3 + 5 + 3 > 10: refused whole
    assert await send("67") == STDIN_OK  # exactly 10
    assert await send("", eof=True) == STDIN_OK
    assert await send("late") == STDIN_CLOSED
    assert await send(None, eof=True) == STDIN_CLOSED
    delivered = await redis.lrange(keys.control(eid), 0, -1)
    assert delivered == [_stdin("12345"), _stdin("67"), _stdin("", eof=True)]
    assert 0 < await redis.ttl(keys.control(eid)) <= 60
    assert await redis.hget(keys.execution(eid), "stdin_bytes") == b"10"
    await redis.hset(keys.execution(eid), "status", "completed")
    assert await send("after") == "completed"


@pytest.mark.anyio
async def test_stdin_to_an_unknown_execution_is_refused(redis: Redis) -> None:
    store = ExecutionStore(redis, ttl_s=60, max_stdin_bytes=10)
    assert await store.send_stdin("nope", _stdin("x"), 1, False) == "missing"
    assert await redis.exists(keys.control("nope")) == 0


def test_a_socket_past_the_stdin_cap_gets_an_error_frame_and_stays_open(server: Client) -> None:
    limit = Settings().max_stdin_bytes
    request_stdin = "x" * 600_000
    execution_id = server.submit(code=COUNTER, interactive=True, stdin=request_stdin)
    with server.socket(execution_id) as ws:
        ws.send(json.dumps({"type": "stdin", "data": "y" * (limit - 600_000 + 1)}))
        ws.send(json.dumps({"type": "stdin", "data": "z" * (limit - 600_000)}))
        ws.send(json.dumps({"type": "stdin", "eof": True}))
        ws.send(json.dumps({"type": "stdin", "data": "after eof"}))
        frames = [json.loads(raw) for raw in ws]
    errors = [f["code"] for f in frames if f["type"] == "error"]
    assert errors == ["stdin_limit", "stdin_closed"]
    assert "".join(f["data"] for f in frames if f["type"] == "stdout") == f"{limit} True\n"
    assert frames[-1]["type"] == "exit" and frames[-1]["exit_code"] == 0


@pytest.mark.anyio
async def test_a_run_that_is_not_interactive_takes_no_stdin_frames(redis: Redis) -> None:
    store = ExecutionStore(redis, ttl_s=60, max_stdin_bytes=10)
    job = wire.Job(keys.new_execution_id("python"), "python", (), stdin="abc")
    await store.submit(job, max_concurrent=0, max_depth=0)
    assert await store.send_stdin(job.execution_id, _stdin("x"), 1, False) == STDIN_CLOSED
    assert await redis.exists(keys.control(job.execution_id)) == 0


@pytest.mark.anyio
async def test_stdin_frames_are_capped_in_number_too(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.executions.MAX_STDIN_FRAMES", 3)
    store = ExecutionStore(redis, ttl_s=60, max_stdin_bytes=10)
    job = wire.Job(keys.new_execution_id("python"), "python", (), interactive=True)
    await store.submit(job, max_concurrent=0, max_depth=0)
    replies = [await store.send_stdin(job.execution_id, _stdin("x"), 1, False) for _ in range(5)]
    assert replies == [STDIN_OK] * 3 + [STDIN_LIMIT] * 2
    assert await redis.llen(keys.control(job.execution_id)) == 3


def test_an_empty_stdin_frame_is_refused() -> None:
    for raw in ('{"type": "stdin"}', '{"type": "stdin", "data": ""}'):
        assert parse_command(raw, 100).kind == "invalid"
    assert parse_command('{"type": "stdin", "eof": true}', 100).kind == "stdin"
