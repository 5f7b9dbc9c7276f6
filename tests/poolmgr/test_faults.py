"""Faults: a worker killed mid-run, Redis restarted mid-run. No accepted execution is lost.

Each test runs its own Redis and separate `coderunner api` / `coderunner worker` processes,
so it can kill and restart them without touching the session's server.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from coderunner.redis_server import EmbeddedRedis
from tests.client import Client, Watched
from tests.polling import until
from tests.poolmgr.test_reaping import containers_of
from tests.processes import free_port, start, stop

QUIET = "import time\ntime.sleep(2)\nprint('done')"  # no output before the fault
LOUD = "import time\nprint('early', flush=True)\ntime.sleep(30)"  # output before the fault


@contextmanager
def api(redis: EmbeddedRedis, log: Path) -> Iterator[Client]:
    port = free_port()
    proc = start("api", log, redis_url=redis.url, port=str(port))
    client = Client(f"http://127.0.0.1:{port}")
    try:
        client.wait_ready(proc)
        yield client
    finally:
        stop(proc)


def worker(
    redis: EmbeddedRedis, log: Path, worker_id: str, heartbeat_ttl_s: int = 2
) -> subprocess.Popen[bytes]:
    """A worker whose death its peers notice within `heartbeat_ttl_s` (short, for the tests)."""
    return start(
        "worker",
        log,
        redis_url=redis.url,
        worker_id=worker_id,
        heartbeat_ttl_s=str(heartbeat_ttl_s),
        reap_interval_s="1",
        worker_metrics_port=str(free_port()),
    )


def status(client: Client, execution_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.request("GET", f"/api/v1/execution/{execution_id}").body
    return body


def running(client: Client, *ids: str) -> bool:
    return all(status(client, i)["status"] == "running" for i in ids)


def test_jobs_of_a_worker_killed_mid_run_end_exactly_once(tmp_path: Path) -> None:
    with EmbeddedRedis() as redis, api(redis, tmp_path / "api.log") as client:
        victim = worker(redis, tmp_path / "victim.log", "victim")
        quiet = client.submit(code=QUIET, timeout_s=20)
        loud = client.submit(code=LOUD, timeout_s=30)
        assert until(lambda: running(client, quiet, loud), 30)
        time.sleep(0.3)  # the loud one's output reaches Redis
        victim.kill()
        victim.wait()
        killed = time.monotonic()
        rescuer = worker(redis, tmp_path / "rescuer.log", "rescuer")
        try:
            with ThreadPoolExecutor(2) as pool:
                watched = list(pool.map(client.watch, [quiet, loud]))
            recovery_s = time.monotonic() - killed
            results = {name: status(client, i) for name, i in (("quiet", quiet), ("loud", loud))}
            # Nothing had reached the user: re-run to completion on the rescuer.
            assert (results["quiet"]["status"], results["quiet"]["stdout"]) == (
                "completed",
                "done\n",
            )
            # Output had reached the user: a clear failure that keeps it, never a silent re-run.
            assert results["loud"]["status"] == "failed"
            assert results["loud"]["failure_code"] == "worker_lost"
            assert results["loud"]["stdout"] == "early\n"
            for seen in watched:
                assert len([f for f in seen.frames if f["type"] == "exit"]) == 1
            assert until(lambda: not containers_of("victim"), 15), "victim's containers remain"
            print(f"\nkill -9 -> terminal: {recovery_s:.1f} s (heartbeat TTL 2 s, re-run 2 s)")
        finally:
            stop(rescuer)


def test_redis_restart_mid_run_loses_nothing(tmp_path: Path) -> None:
    with EmbeddedRedis() as redis, api(redis, tmp_path / "api.log") as client:
        # A restart shorter than the heartbeat TTL: the worker keeps vouching for its run. (One
        # longer than 80 % of it makes the worker stop its runs, by design: see test_worker.)
        proc = worker(redis, tmp_path / "worker.log", "survivor", heartbeat_ttl_s=15)
        try:
            code = "import time\nprint('before', flush=True)\ntime.sleep(3)\nprint('after')"
            execution_id = client.submit(code=code, timeout_s=20)
            assert until(lambda: running(client, execution_id), 30)
            with client.socket(execution_id) as ws:
                frames = [json.loads(ws.recv(timeout=30))]  # watching before Redis goes
                while "before\n" not in [f.get("data") for f in frames]:
                    frames.append(json.loads(ws.recv(timeout=30)))
                redis.shutdown()
                refused = client.request(
                    "POST", "/api/v1/execute", {"language": "python", "code": "print(1)"}
                )
                assert refused.status == 503
                assert refused.body["error"]["code"] == "queue_unavailable"
                assert refused.headers.get("retry-after") == "1"
                assert client.request("GET", "/readyz").status == 503
                time.sleep(0.5)
                redis.start()
                while frames[-1]["type"] != "exit":
                    frames.append(json.loads(ws.recv(timeout=60)))
            seen = Watched(frames, None)
            assert seen.text() == "before\nafter\n" and seen.exit["status"] == "completed"
            result = status(client, execution_id)
            assert result["stdout"] == "before\nafter\n"
            assert client.run(code="print('again')")["stdout"] == "again\n"
        finally:
            assert stop(proc) == 0


def test_stdin_sent_while_queued_is_delivered(tmp_path: Path) -> None:
    """No worker runs yet: the stdin waits in Redis and reaches the program once it starts."""
    with EmbeddedRedis() as redis, api(redis, tmp_path / "api.log") as client:
        code = "print(input().upper())"
        execution_id = client.submit(code=code, interactive=True)
        with client.socket(execution_id) as ws:
            ws.send(json.dumps({"type": "stdin", "data": "typed early\n"}))
            proc = worker(redis, tmp_path / "worker.log", "late")
            try:
                frames = [json.loads(raw) for raw in ws]
            finally:
                stop(proc)
        assert (
            "".join(f.get("data", "") for f in frames if f["type"] == "stdout") == "TYPED EARLY\n"
        )


def test_without_a_docker_engine_jobs_wait_and_readiness_says_so(tmp_path: Path) -> None:
    with EmbeddedRedis() as redis:
        port = free_port()
        proc = start(
            "dev",
            tmp_path / "dev.log",
            redis_url=redis.url,
            port=str(port),
            docker_url=f"unix://{tmp_path}/no-engine.sock",
        )
        client = Client(f"http://127.0.0.1:{port}")
        try:
            assert until(lambda: _answers(client), 30)
            ready = client.request("GET", "/readyz")
            assert ready.status == 503 and ready.body["checks"] == {
                "redis": True,
                "docker": False,
                "serving": True,
            }
            execution_id = client.submit(code="print(1)")
            time.sleep(4)  # longer than the breaker's first back-off delays
            assert status(client, execution_id)["status"] == "queued"  # waiting, not failed
        finally:
            assert stop(proc) == 0


def _answers(client: Client) -> bool:
    try:
        return client.request("GET", "/healthz").status == 200
    except OSError:
        return False
