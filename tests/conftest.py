"""Session fixtures: a real redis-server, a real `coderunner dev` on a free port, real Docker."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import docker
import pytest
from redis.asyncio import Redis

from coderunner.redis_server import EmbeddedRedis
from poolmgr.sandbox import LABEL_LANGUAGE, LABEL_WORKER
from tests.client import Client
from tests.processes import free_port, start, stop


def labelled_containers(label: str = "code-runner") -> list[str]:
    """Ids of containers with this label (`key` or `key=value`), running or not."""
    return list(_labelled(label))


def _labelled(label: str) -> dict[str, str]:
    """`{id: "worker language state"}` of the containers with this label, running or not."""
    client = docker.from_env()
    try:
        found = client.api.containers(all=True, filters={"label": label})
    finally:
        client.close()
    return {
        c["Id"]: " ".join(
            (c["Labels"].get(LABEL_WORKER, "?"), c["Labels"].get(LABEL_LANGUAGE, "?"), c["State"])
        )
        for c in found
    }


# The suite's clients all come from one address: the front door's limits, tested on servers
# of their own, are off on the shared one.
UNLIMITED = {"rate_per_s": "0", "max_concurrent_per_user": "0", "max_queue_depth": "0"}


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with EmbeddedRedis() as redis:
        yield redis.url


@pytest.fixture(scope="session")
def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """`coderunner dev` as a user starts it, on its own port; stopped with SIGTERM at the end."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc = start(
        "dev",
        log,
        redis_url=redis_url,
        port=str(port),
        pool_min="1",
        pool_min_python="3",
        reap_interval_s="1",
        heartbeat_ttl_s="3",
        worker_id=f"test-server-{port}",
        **UNLIMITED,
    )
    client = Client(f"http://127.0.0.1:{port}")
    try:
        client.wait_ready(proc)
        yield client
    finally:
        code = stop(proc)
    assert code == 0, f"server exited with {code}; see {log}"


@pytest.fixture(scope="session", autouse=True)
def no_containers_left_behind() -> Iterator[None]:
    """Every test session ends with no code-runner container on the engine."""
    yield
    deadline = time.monotonic() + 10
    while (left := _labelled("code-runner")) and time.monotonic() < deadline:
        time.sleep(0.2)
    owners = Counter(left.values())  # whose they are says which test left them
    assert not left, f"{len(left)} containers left behind (worker language state: count): {owners}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    """A Redis of the test's own: for tests that pause it, fill it or sweep all of it."""
    with EmbeddedRedis() as server:
        client = Redis.from_url(server.url)
        yield client
        await client.aclose()


@pytest.fixture
async def shared_redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the session's Redis, which the session's server uses too."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()
