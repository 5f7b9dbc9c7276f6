"""Containers never outlive their worker: a `kill -9`-ed worker's leftovers are reaped."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

from poolmgr.engine import Engine
from poolmgr.engine_errors import EngineError
from poolmgr.reaper import Reaper
from poolmgr.sandbox import container_config
from runtimes.registry import RUNTIMES
from runtimes.settings import Settings
from tests.client import Client
from tests.conftest import labelled_containers
from tests.polling import until
from tests.processes import free_port, start


def containers_of(worker_id: str) -> list[str]:
    return labelled_containers(f"code-runner.worker={worker_id}")


def test_leftovers_of_a_killed_worker_are_reaped(
    server: Client, redis_url: str, tmp_path: Path
) -> None:
    victim = f"victim-{os.getpid()}"
    proc = start(
        "worker",
        tmp_path / "victim.log",
        redis_url=redis_url,
        worker_id=victim,
        pool_min="2",
        heartbeat_ttl_s="2",
        worker_metrics_port=str(free_port()),
    )
    try:
        assert until(lambda: len(containers_of(victim)) >= 2, 30), "victim never warmed up"
    finally:
        proc.kill()
        proc.wait()
    assert containers_of(victim), "a killed worker cannot have cleaned up after itself"
    # The test server reaps every second; the victim's heartbeat lives 2 s.
    assert until(lambda: not containers_of(victim), 20), "leftovers were not reaped"
    assert server.run(code="print('still serving')")["stdout"] == "still serving\n"


class _FirstRemoveFails(Engine):
    """The real engine, but its first removal fails, as one that times out would."""

    failed = False

    async def remove(self, container_id: str) -> None:
        if not self.failed:
            self.failed = True
            raise EngineError(f"remove {container_id[:12]}: no answer (injected)")
        await super().remove(container_id)


@pytest.mark.anyio
async def test_a_failed_removal_on_the_way_out_does_not_leave_the_rest(
    shared_redis: Redis,
) -> None:
    settings = Settings(worker_id=f"test-reap-own-{uuid.uuid4().hex[:8]}")
    async with _FirstRemoveFails(settings.docker_url) as engine:
        config = container_config(RUNTIMES["python"], settings)
        for _ in range(3):
            await engine.create(config)
        reaper = Reaper(engine, shared_redis, settings.worker_id, "", 1.0, set)
        await reaper.reap_own()
        assert engine.failed
    assert containers_of(settings.worker_id) == []
