"""A standalone worker's probes and metrics, on its own port, as Kubernetes reads them."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from coderunner.redis_server import EmbeddedRedis
from tests.client import Client
from tests.conftest import labelled_containers
from tests.polling import until
from tests.processes import free_port, start, stop


def _get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            body = resp.read().decode()
            status = resp.status
    except urllib.error.HTTPError as err:
        body, status = err.read().decode(), err.code
    except OSError:
        return 0, None
    return status, json.loads(body) if path != "/metrics" else body


@contextmanager
def api_and_worker(log: Path, name: str) -> Iterator[tuple[Client, subprocess.Popen[bytes], int]]:
    """A `coderunner api` and a python `coderunner worker` (id `name-<port>`) on their own
    Redis, both ready: (client, worker, worker's health port); both stopped after."""
    with EmbeddedRedis() as redis:
        port, health = free_port(), free_port()
        api = start("api", log, redis_url=redis.url, port=str(port), max_concurrent_per_user="0")
        worker = start(
            "worker",
            log,
            redis_url=redis.url,
            worker_languages="python",
            worker_metrics_port=str(health),
            worker_id=f"{name}-{health}",
        )
        client = Client(f"http://127.0.0.1:{port}")
        try:
            client.wait_ready(api)
            assert until(lambda: _get(health, "/readyz")[0] == 200, 30)
            yield client, worker, health
        finally:
            if worker.poll() is None:
                stop(worker)
            stop(api)


def test_worker_serves_health_readiness_and_metrics_and_drains(tmp_path: Path) -> None:
    with api_and_worker(tmp_path / "worker.log", "health") as (client, worker, health):
        assert _get(health, "/healthz") == (200, {"status": "ok"})
        _, ready = _get(health, "/readyz")
        assert ready == {
            "ready": True,
            "checks": {"docker": True, "heartbeat": True, "serving": True},
        }
        metrics = _get(health, "/metrics")[1]
        assert 'code_runner_warm_containers{language="python"}' in metrics
        execution_id = client.submit(code="import time; time.sleep(3); print('done')")
        assert until(
            lambda: (
                client.request("GET", f"/api/v1/execution/{execution_id}").body["status"]
                == "running"
            ),
            15,
        )
        worker.send_signal(signal.SIGTERM)  # draining: no new work, the run finishes
        assert until(lambda: _get(health, "/readyz")[0] == 503, 2)
        checks = _get(health, "/readyz")[1]["checks"]
        assert (checks["serving"], checks["docker"]) == (False, True)  # draining, not broken
        assert worker.wait(30) == 0
        result = client.request("GET", f"/api/v1/execution/{execution_id}").body
        assert result["status"] == "completed" and result["stdout"] == "done\n"


def test_a_second_signal_cuts_the_drain_short_and_still_cleans_up(tmp_path: Path) -> None:
    with api_and_worker(tmp_path / "worker.log", "cut-short") as (client, worker, health):
        execution_id = client.submit(code="import time; time.sleep(25)", timeout_s=30)
        path = f"/api/v1/execution/{execution_id}"
        assert until(lambda: client.request("GET", path).body["status"] == "running", 15)
        worker.send_signal(signal.SIGTERM)  # draining: it would wait for the 25 s run
        assert until(lambda: _get(health, "/readyz")[0] == 503, 2)
        worker.send_signal(signal.SIGTERM)  # an impatient operator
        assert worker.wait(15) == 0
        assert labelled_containers(f"code-runner.worker=cut-short-{health}") == []
