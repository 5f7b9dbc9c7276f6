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
from collections.abc import Iterator
from contextlib import contextmanager
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


def post(base: str, path: str, body: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    url = urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        reply: dict[str, Any] = json.loads(conn.getresponse().read())
        return reply
    finally:
        conn.close()


def _ready(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except OSError:
        return False


# Benchmarks measure the engine, not the front door's per-client limits.
UNLIMITED = {
    "CODERUNNER_RATE_PER_S": "0",
    "CODERUNNER_MAX_CONCURRENT_PER_USER": "0",
    "CODERUNNER_MAX_QUEUE_DEPTH": "0",
}


@contextmanager
def own_server(**env_overrides: str) -> Iterator[str]:
    """A `coderunner dev` with a private redis on a free port, stopped with SIGTERM after."""
    port = _free_port()
    env = {**os.environ, "CODERUNNER_PORT": str(port), **UNLIMITED, **env_overrides}
    env.pop("CODERUNNER_REDIS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "coderunner", "dev"], env=env, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while not _ready(port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("coderunner dev did not become ready")
            time.sleep(0.2)
        time.sleep(1.5)  # let the pools fill
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
