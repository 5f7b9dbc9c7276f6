"""What the benchmarks share: a private `coderunner dev`, percentiles, a tiny HTTP client."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

IMAGE = "coderunner-python:latest"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_command(cmd: list[str], runs: int, expected: str) -> list[float]:
    """Milliseconds of each of `runs` runs of `cmd` (after one that warms caches), checked."""
    subprocess.run(cmd, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        times.append((time.perf_counter() - t0) * 1e3)
        assert out == expected, out
    return times


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(
    base: str, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 120
) -> dict[str, Any]:
    """One JSON request; the reply's JSON body, whatever its HTTP status."""
    url = urlparse(base)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body)
        conn.request(method, path, data, {"Content-Type": "application/json"})
        reply: dict[str, Any] = json.loads(conn.getresponse().read())
        return reply
    finally:
        conn.close()


def warm_containers(base: str, language: str = "python") -> int:
    """The server's warm containers of `language`, from its /metrics."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(f'code_runner_warm_containers{{language="{language}"}}'):
                return int(float(line.split()[-1]))
    raise RuntimeError("no code_runner_warm_containers metric")


def post(base: str, path: str, body: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    return call(base, "POST", path, body, timeout)


def _ready(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


# Benchmarks measure the engine, not the front door's per-client limits.
UNLIMITED = {
    "CODERUNNER_RATE_PER_S": "0",
    "CODERUNNER_MAX_CONCURRENT_PER_USER": "0",
    "CODERUNNER_MAX_QUEUE_DEPTH": "0",
}


@dataclass(frozen=True)
class Server:
    """A running `coderunner dev`: its base URL, and its pid for whoever watches its memory."""

    base: str
    pid: int


@contextmanager
def served(log: Path | None = None, **env_overrides: str) -> Iterator[Server]:
    """A `coderunner dev` on a free port, stopped with SIGTERM after, its log in `log` (else
    discarded); its Redis is a private one unless `CODERUNNER_REDIS_URL` is among the
    overrides (one from the caller's own environment is not used)."""
    port = _free_port()
    env = {**os.environ, "CODERUNNER_PORT": str(port), **UNLIMITED}
    env.pop("CODERUNNER_REDIS_URL", None)
    env.update(env_overrides)
    with open(log, "ab") if log else open(os.devnull, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "coderunner", "dev"], env=env, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while not _ready(port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("coderunner dev did not become ready")
            time.sleep(0.2)
        time.sleep(1.5)  # let the pools fill
        yield Server(f"http://127.0.0.1:{port}", proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(75)  # past the worker's drain (poolmgr.worker.drain_grace_s)


@contextmanager
def own_server(**env_overrides: str) -> Iterator[str]:
    """`served`, for callers that need only its base URL."""
    with served(**env_overrides) as server:
        yield server.base
