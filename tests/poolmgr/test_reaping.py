"""Containers never outlive their worker: a `kill -9`-ed worker's leftovers are reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.client import Client
from tests.conftest import free_port, labelled_containers


def _containers_of(worker_id: str) -> list[str]:
    return labelled_containers(f"code-runner.worker={worker_id}")


def _until(condition: object, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.2)
    return False


def test_leftovers_of_a_killed_worker_are_reaped(server: Client, redis_url: str) -> None:
    victim = f"victim-{os.getpid()}"
    env = {
        **os.environ,
        "CODERUNNER_REDIS_URL": redis_url,
        "CODERUNNER_WORKER_ID": victim,
        "CODERUNNER_POOL_MIN": "2",
        "CODERUNNER_HEARTBEAT_TTL_S": "2",
        "CODERUNNER_WORKER_METRICS_PORT": str(free_port()),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtimes", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _until(lambda: len(_containers_of(victim)) >= 2, 30), "victim never warmed up"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _containers_of(victim), "a killed worker cannot have cleaned up after itself"
    # The test server reaps every second; the victim's heartbeat lives 2 s.
    assert _until(lambda: not _containers_of(victim), 20), "leftovers were not reaped"
    assert server.run(code="print('still serving')")["stdout"] == "still serving\n"
