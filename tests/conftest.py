"""Session fixtures: a real redis-server, a real `coderunner dev` on a free port, real Docker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import docker
import pytest

from runtimes.redis_server import EmbeddedRedis
from tests.client import Client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def labelled_containers(label: str = "code-runner") -> list[str]:
    """Ids of containers with this label (`key` or `key=value`), running or not."""
    client = docker.from_env()
    try:
        return [c["Id"] for c in client.api.containers(all=True, filters={"label": label})]
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with EmbeddedRedis() as redis:
        yield redis.url


@pytest.fixture(scope="session")
def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """`coderunner dev` as a user starts it, on its own port; stopped with SIGTERM at the end."""
    port = free_port()
    env = {
        **os.environ,
        "CODERUNNER_REDIS_URL": redis_url,
        "CODERUNNER_PORT": str(port),
        "CODERUNNER_POOL_MIN": "3",
        "CODERUNNER_REAP_INTERVAL_S": "1",
        "CODERUNNER_HEARTBEAT_TTL_S": "3",
        "CODERUNNER_WORKER_ID": f"test-server-{port}",
    }
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtimes", "dev"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    client = Client(f"http://127.0.0.1:{port}")
    try:
        client.wait_ready(proc)
        yield client
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode == 0, f"server exited with {proc.returncode}; see {log_path}"


@pytest.fixture(scope="session", autouse=True)
def no_containers_left_behind() -> Iterator[None]:
    """Every test session ends with no code-runner container on the engine."""
    yield
    deadline = time.monotonic() + 10
    while (left := labelled_containers()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], f"containers left behind: {left}"
