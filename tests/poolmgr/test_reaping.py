"""Containers never outlive their worker: a `kill -9`-ed worker's leftovers are reaped."""

from __future__ import annotations

import os
from pathlib import Path

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
