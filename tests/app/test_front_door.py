"""The front door on real servers: API keys, the rate limit across two app processes, the
per-user concurrency cap, load shedding, wait estimates, and the shutdown close code."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from coderunner.redis_server import EmbeddedRedis
from tests.client import Client, Reply
from tests.polling import until
from tests.processes import free_port, start, stop

KEYS = "k-auth:auth,k-cap:cap,k-est:est,k-ws:ws,k-vip:vip:premium"
SLEEPER = "import time; time.sleep(2); print('slept')"


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _serve(command: str, log: Path, **env: str) -> tuple[subprocess.Popen[bytes], Client]:
    port = free_port()
    proc = start(command, log, port=str(port), **env)
    client = Client(f"http://127.0.0.1:{port}")
    client.wait_ready(proc)
    return proc, client


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """`coderunner dev` with keys and the default limits (2 at once per user), python only."""
    log = tmp_path_factory.mktemp("door") / "server.log"
    proc, client = _serve(
        "dev",
        log,
        api_keys=KEYS,
        worker_languages="python",
        pool_min_python="2",
        rate_burst="50",
        rate_per_s="20",
        worker_id=f"door-{log.parent.name}",
    )
    try:
        yield client
    finally:
        assert stop(proc) == 0, f"see {log}"


@pytest.fixture(scope="module")
def two_apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Client]]:
    """Two `coderunner api` processes on one Redis and no worker: jobs stay queued."""
    log = tmp_path_factory.mktemp("apps") / "apps.log"
    env = {
        "api_keys": "k-std:std,k-vip:vip:premium,k-rate:rate:premium",
        "rate_burst": "6",
        "rate_per_s": "0.05",
        "max_concurrent_per_user": "0",
        "max_queue_depth": "3",
    }
    with EmbeddedRedis() as redis:
        first, a = _serve("api", log, redis_url=redis.url, **env)
        second, b = _serve("api", log, redis_url=redis.url, **env)
        try:
            yield a, b
        finally:
            stop(first)
            stop(second)


def _submit(client: Client, key: str, **body: Any) -> Reply:
    return client.request(
        "POST", "/api/v1/execute", {"language": "python", **body}, headers=_bearer(key)
    )


def _closed_with(socket: ClientConnection) -> int | None:
    try:
        while True:
            socket.recv(timeout=10)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None


def _run_over(socket: ClientConnection, **body: Any) -> list[dict[str, Any]]:
    socket.send(json.dumps({"type": "run", "language": "python", **body}))
    frames = []
    while not frames or frames[-1]["type"] not in ("exit", "error"):
        frames.append(json.loads(socket.recv(timeout=30)))
    return frames


def test_http_calls_need_a_valid_key(door: Client) -> None:
    for headers in ({}, _bearer("wrong"), {"Authorization": "Basic k-auth"}):
        reply = door.request(
            "POST", "/api/v1/execute", {"language": "python", "code": "1"}, headers=headers
        )
        assert reply.status == 401, reply
        assert reply.body["error"]["code"] == "unauthorized"
        assert reply.headers["WWW-Authenticate"] == "Bearer"
    assert door.request("GET", "/api/v1/runtimes").status == 401
    assert door.request("GET", "/api/v1/execution/nope").status == 401
    assert door.request("DELETE", "/api/v1/execution/nope").status == 401
    assert door.request("GET", "/api/v1/runtimes", headers=_bearer("k-auth")).status == 200
    assert _submit(door, "k-auth", code="print(1)").status == 202
    for open_path in ("/healthz", "/readyz", "/metrics"):
        assert door.request("GET", open_path).status == 200, open_path


def test_websockets_need_a_valid_key(door: Client) -> None:
    for url in (f"{door.ws_base}/ws/run", f"{door.ws_base}/ws/run?token=wrong"):
        with connect(url, open_timeout=10) as socket:
            assert _closed_with(socket) == 4401
    with connect(f"{door.ws_base}/ws/execution/x?token=nope", open_timeout=10) as socket:
        assert _closed_with(socket) == 4401
    with connect(f"{door.ws_base}/ws/run?token=k-ws", open_timeout=10) as socket:
        assert _run_over(socket, code="print('token')")[-1]["status"] == "completed"
    execution_id = _submit(door, "k-ws", code="print('bearer')").body["execution_id"]
    url = f"{door.ws_base}/ws/execution/{execution_id}"
    with connect(url, additional_headers=_bearer("k-ws"), open_timeout=10) as socket:
        frames = []
        try:
            while True:
                frames.append(json.loads(socket.recv(timeout=30)))
        except ConnectionClosed:
            pass
    assert frames[-1]["type"] == "exit" and frames[-1]["status"] == "completed"


def test_execute_answers_carry_rate_limit_headers(door: Client) -> None:
    accepted = _submit(door, "k-auth", code="print(1)")
    invalid = _submit(door, "k-auth", code=1)
    for reply in (accepted, invalid):
        assert reply.headers["X-RateLimit-Limit"] == "50"
        assert 0 <= int(reply.headers["X-RateLimit-Remaining"]) < 50
        assert int(reply.headers["X-RateLimit-Reset"]) >= 0
    assert invalid.status == 422


def test_the_rate_limit_holds_across_two_app_processes(two_apps: tuple[Client, Client]) -> None:
    a, b = two_apps
    # bash: a queue of its own, too short to shed these (its depth limit is 3, premium 6).
    replies = [_submit(a if i % 2 else b, "k-rate", language="bash", code="1") for i in range(8)]
    assert [r.status for r in replies] == [202] * 6 + [429] * 2
    refused = replies[-1]
    assert refused.body["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-RateLimit-Remaining"] == "0"


def test_a_full_queue_sheds_standard_jobs_first(two_apps: tuple[Client, Client]) -> None:
    a, b = two_apps
    standard = [_submit(a, "k-std", code="1").status for _ in range(4)]
    assert standard == [202, 202, 202, 503]
    shed = _submit(b, "k-std", code="1")
    assert shed.body["error"]["code"] == "queue_full" and shed.headers["Retry-After"]
    # Premium jobs are shed only at twice the depth.
    premium = [_submit(b, "k-vip", code="1").status for _ in range(4)]
    assert premium == [202, 202, 202, 503]


def test_no_worker_for_the_language_means_no_estimate(two_apps: tuple[Client, Client]) -> None:
    a, _ = two_apps
    reply = a.request(
        "POST",
        "/api/v1/execute",
        {"language": "go", "code": "package main"},
        headers=_bearer("k-vip"),
    )
    assert reply.status == 202 and reply.body["estimated_wait_ms"] is None


def test_a_warm_idle_pool_means_no_wait(door: Client) -> None:
    assert until(lambda: _submit(door, "k-est", code="1").body["estimated_wait_ms"] == 0, 10)


def test_at_most_two_executions_per_user_at_once(door: Client) -> None:
    first = _submit(door, "k-cap", code=SLEEPER)
    second = _submit(door, "k-cap", code=SLEEPER)
    third = _submit(door, "k-cap", code=SLEEPER)
    assert (first.status, second.status, third.status) == (202, 202, 429)
    assert third.body["error"]["code"] == "too_many_running"
    assert third.headers["Retry-After"] == "1"
    assert _submit(door, "k-auth", code="1").status == 202  # another user is not held up
    ended = door.watch(first.body["execution_id"], headers=_bearer("k-cap"))
    assert ended.exit["status"] == "completed"  # a slot is free again
    assert _submit(door, "k-cap", code="print(1)").status == 202


def test_sigterm_drains_then_closes_sockets_with_going_away(tmp_path: Path) -> None:
    """A running execution finishes and its frames reach the editor; meanwhile /readyz says
    503 so that balancers send new clients elsewhere; then the socket closes with 1001."""
    proc, client = _serve(
        "dev", tmp_path / "dev.log", worker_languages="python", worker_id=f"drain-{tmp_path.name}"
    )
    try:
        with connect(f"{client.ws_base}/ws/run", open_timeout=10) as socket:
            code = "import time; time.sleep(2); print('finished')"
            socket.send(json.dumps({"type": "run", "language": "python", "code": code}))
            while json.loads(socket.recv(timeout=30)).get("status") != "running":
                pass
            proc.send_signal(signal.SIGTERM)
            assert until(lambda: client.request("GET", "/readyz").status == 503, 1.5)
            frames = []
            try:
                while True:
                    frames.append(json.loads(socket.recv(timeout=30)))
            except ConnectionClosed as exc:
                closed = exc.rcvd.code if exc.rcvd is not None else None
        assert [f["data"] for f in frames if f["type"] == "stdout"] == ["finished\n"]
        assert frames[-1]["type"] == "exit" and frames[-1]["status"] == "completed"
        assert closed == 1001
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            stop(proc)


def test_an_open_service_does_not_take_the_client_address_from_headers(tmp_path: Path) -> None:
    """Open, each client address is a user: a client must not pick a new one per request
    with X-Forwarded-For (uvicorn trusted it from 127.0.0.1 by default: a fresh bucket each)."""
    with EmbeddedRedis() as redis:
        proc, client = _serve(
            "api",
            tmp_path / "api.log",
            redis_url=redis.url,
            rate_burst="3",
            rate_per_s="0.01",
            max_concurrent_per_user="0",
        )
        try:
            statuses = [
                client.request(
                    "POST",
                    "/api/v1/execute",
                    {"language": "python", "code": "1"},
                    headers={"X-Forwarded-For": f"10.0.0.{i}"},
                ).status
                for i in range(4)
            ]
        finally:
            stop(proc)
    assert statuses == [202, 202, 202, 429]
