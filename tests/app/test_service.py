"""Service endpoints around the core path: health, readiness, runtimes, metrics, bad input."""

from __future__ import annotations

import socket

from tests.client import Client


def test_health_and_readiness(server: Client) -> None:
    assert server.request("GET", "/healthz").status == 200
    ready = server.request("GET", "/readyz")
    assert ready.status == 200 and ready.body["checks"] == {
        "redis": True,
        "docker": True,
        "serving": True,
    }


def test_runtimes_lists_python(server: Client) -> None:
    runtimes = server.request("GET", "/api/v1/runtimes").body
    python = next(r for r in runtimes if r["language"] == "python")
    assert python["compiled"] is False and "py" in python["aliases"]


def test_metrics_expose_the_contract_names(server: Client) -> None:
    result = server.run(code="print(1)")
    reply = server.request("GET", "/metrics")
    assert reply.status == 200
    text: str = reply.body
    for name in ("queue_depth", "warm_containers", "pool_target", "pool_fill_ratio",
                 "cold_start_rate", "active_executions", "queue_wait_seconds_bucket",
                 "execution_duration_seconds_bucket"):  # fmt: skip
        assert f"code_runner_{name}{{" in text, name
    for queue in ("premium", "standard"):
        assert f'code_runner_queue_depth{{language="python",queue="{queue}"}}' in text
    started = f'code_runner_container_starts_total{{language="python",start="{result["start"]}"}}'
    assert started in text
    assert 'code_runner_executions_total{language="python",status="completed"}' in text


def test_bad_requests_get_clear_4xx(server: Client) -> None:
    cases = [
        (b"not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        (b'{"language": "cobol", "code": "x"}', 422, "invalid_field"),
        (b'{"language": "python"}', 422, "invalid_field"),
        (b'{"language": "python", "code": "x", "timeout_s": 99}', 422, "invalid_field"),
        (
            b'{"language": "python", "files": [{"name": "../x.py", "content": ""}]}',
            422,
            "invalid_field",
        ),
        (b'{"language": "python", "code": "' + b"x" * 300_000 + b'"}', 413, "code_too_large"),
    ]
    for raw, status, code in cases:
        reply = server.request("POST", "/api/v1/execute", raw=raw)
        assert (reply.status, reply.body["error"]["code"]) == (status, code), raw[:60]
        assert reply.body["error"]["message"]


def test_oversized_request_is_refused_before_its_body_is_read(server: Client) -> None:
    host, port = server.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n{"
        )
        reply = b""
        while b"}}" not in reply and (chunk := sock.recv(65536)):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413"), reply
    assert b'"request_too_large"' in reply
