"""The single-machine rehearsal of what the HPA does: one API process and three worker
processes on one Redis and one engine. Jobs spread over the workers, the queue depth the HPA
scales on rises with a backlog and falls to 0, a worker stopped with SIGTERM drains, one
killed with -9 is recovered from, and no accepted execution is lost."""

from __future__ import annotations

import re
import signal
import subprocess
import urllib.request
from pathlib import Path

from coderunner.redis_server import EmbeddedRedis
from tests.client import Client
from tests.polling import until
from tests.processes import free_port, start, stop

JOBS = 24
SLEEPER = "import time\ntime.sleep(1)\nprint('done')"
TERMINAL = {"completed", "failed", "timed_out", "memory_exceeded", "output_exceeded", "aborted"}
UNLIMITED = {"rate_per_s": "0", "max_concurrent_per_user": "0", "max_queue_depth": "0"}


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def _started(metrics_port: int) -> float:
    """Executions a worker has started (warm or cold), from its own /metrics."""
    text = _scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    return _metric(text, "code_runner_container_starts_total", language="python")


def _depth(client: Client) -> float:
    text = str(client.request("GET", "/metrics").body)
    return _metric(text, "code_runner_queue_depth", language="python")


def _statuses(client: Client, ids: list[str]) -> list[str]:
    return [client.request("GET", f"/api/v1/execution/{i}").body["status"] for i in ids]


def test_three_workers_share_the_queue_drain_and_recover(tmp_path: Path) -> None:
    log = tmp_path / "rehearsal.log"
    with EmbeddedRedis() as redis:
        port = free_port()
        api = start("api", log, redis_url=redis.url, port=str(port), **UNLIMITED)
        workers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        for name in ("w1", "w2", "w3"):
            metrics_port = free_port()
            proc = start(
                "worker",
                log,
                redis_url=redis.url,
                worker_id=f"rehearsal-{name}-{port}",
                worker_languages="python",
                worker_slots="2",
                pool_min_python="1",
                pool_max_python="2",
                heartbeat_ttl_s="3",
                reap_interval_s="1",
                worker_metrics_port=str(metrics_port),
            )
            workers[name] = (proc, metrics_port)
        client = Client(f"http://127.0.0.1:{port}")
        try:
            client.wait_ready(api)
            client.run(code="print('warm')")  # every group exists, a worker answers
            ids = [client.submit(code=SLEEPER, timeout_s=20) for _ in range(JOBS)]
            # A backlog: 24 one-second jobs, 6 slots in all.
            assert _depth(client) > 0
            # The work spreads: each of the three workers starts some of it.
            assert until(lambda: all(_started(port) > 0 for _, port in workers.values()), 10)
            workers["w2"][0].send_signal(signal.SIGTERM)  # scaled down: drains
            workers["w3"][0].kill()  # a node lost: its running jobs are recovered
            assert workers["w2"][0].wait(30) == 0
            assert until(lambda: set(_statuses(client, ids)) <= TERMINAL, 90, every_s=0.5)
            assert until(lambda: _depth(client) == 0, 10)
            statuses = _statuses(client, ids)
            # Nothing lost: every execution ended, and each one completed (w3's were re-run:
            # no output of theirs had reached a watcher) or, at worst, failed as worker_lost.
            assert len(statuses) == JOBS and set(statuses) <= {"completed", "failed"}
            failed = [
                client.request("GET", f"/api/v1/execution/{i}").body["failure_code"]
                for i, s in zip(ids, statuses, strict=True)
                if s == "failed"
            ]
            assert set(failed) <= {"worker_lost"}, failed
            assert statuses.count("completed") >= JOBS - 2
            survivor = _scrape(f"http://127.0.0.1:{workers['w1'][1]}/metrics")
            assert _metric(survivor, "code_runner_executions_total", status="completed") > 0
        finally:
            for proc, _ in workers.values():
                if proc.poll() is None:
                    stop(proc)
            stop(api)
