"""A user's concurrency slot survives no fault: a worker killed with -9 mid-run holds it only
until recovery ends the execution. Its own Redis and worker processes, as in test_faults."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import anyio
import docker
import pytest
from redis.asyncio import Redis

from coderunner.redis_server import EmbeddedRedis
from runtimes import keys, wire
from runtimes.transitions import BUSY, SHED, Transitions
from tests.polling import until
from tests.poolmgr.test_faults import LOUD, worker
from tests.poolmgr.test_reaping import containers_of
from tests.processes import stop

pytestmark = pytest.mark.anyio


def _job(code: str) -> wire.Job:
    files = (wire.SourceFile("main.py", code),)
    return wire.Job(uuid.uuid4().hex, "python", files, enqueued_at=time.time(), user="alice")


async def _status(redis: Redis, job: wire.Job) -> str:
    raw = await redis.hget(keys.execution(job.execution_id), "status")
    return raw.decode() if raw else "missing"


async def _until_status(redis: Redis, job: wire.Job, wanted: set[str], limit_s: float) -> str:
    with anyio.fail_after(limit_s):
        while (status := await _status(redis, job)) not in wanted:  # noqa: ASYNC110
            await anyio.sleep(0.05)
    return status


async def test_the_slot_of_a_run_on_a_worker_killed_with_9_is_freed(tmp_path: Path) -> None:
    with EmbeddedRedis() as server:
        redis = Redis.from_url(server.url)
        t = Transitions(redis)
        victim = worker(server, tmp_path / "victim.log", "slot-victim")
        rescuer = None
        try:
            running = _job(LOUD)  # output reaches Redis before the kill: it ends `failed`
            assert await t.submit(running, max_concurrent=1) not in (BUSY, SHED)
            await _until_status(redis, running, {"running"}, 30)
            assert await t.submit(_job("print(1)"), max_concurrent=1) == BUSY
            await anyio.sleep(0.3)  # its output reaches Redis
            victim.kill()
            victim.wait()
            assert await t.submit(_job("print(1)"), max_concurrent=1) == BUSY  # not ended yet
            rescuer = worker(server, tmp_path / "rescuer.log", "slot-rescuer")
            assert await _until_status(redis, running, {"failed"}, 30) == "failed"
            after = _job("print('after')")
            assert await t.submit(after, max_concurrent=1) not in (BUSY, SHED)
            assert await _until_status(redis, after, {"completed"}, 30) == "completed"
            assert until(lambda: not containers_of("slot-victim"), 15), "victim's containers"
        finally:
            if victim.poll() is None:
                victim.kill()
            if rescuer is not None:
                assert stop(rescuer) == 0
            await redis.aclose()
            _remove(containers_of("slot-victim"))  # left only when the test failed early


def _remove(container_ids: list[str]) -> None:
    client = docker.from_env()
    try:
        for container_id in container_ids:
            client.api.remove_container(container_id, force=True)
    finally:
        client.close()
