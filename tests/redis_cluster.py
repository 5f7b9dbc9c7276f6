"""A local three-node Redis Cluster (Debian's redis-server), for the cluster tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.processes import free_port

NODES = 3


BUS_OFFSET = 10_000  # a node's cluster bus listens on its port + 10000


def _node_port() -> int:
    """A free port whose cluster bus port is free and valid too."""
    while True:
        port = free_port()
        if port + BUS_OFFSET <= 65_535:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + BUS_OFFSET))
                except OSError:
                    continue
            return port


def _cli(port: int, *args: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=30
    )
    return done.stdout


@contextmanager
def redis_cluster() -> Iterator[list[int]]:
    """Three masters (no replicas) on free ports, the 16384 slots spread over them; yields
    their ports once the cluster answers `cluster_state:ok`."""
    ports = [_node_port() for _ in range(NODES)]
    work = Path(tempfile.mkdtemp(prefix="coderunner-cluster-"))
    procs = []
    try:
        for port in ports:
            node = work / str(port)
            node.mkdir()
            options = {
                "port": str(port),
                "bind": "127.0.0.1",
                "cluster-enabled": "yes",
                "cluster-config-file": "nodes.conf",
                "dir": str(node),
                "save": "",
                "appendonly": "no",
                "loglevel": "warning",
            }
            argv = [arg for name, value in options.items() for arg in (f"--{name}", value)]
            procs.append(subprocess.Popen(["redis-server", *argv], stdout=subprocess.DEVNULL))
        for port in ports:
            _until(lambda p=port: _cli(p, "ping").strip() == "PONG")
        nodes = [f"127.0.0.1:{port}" for port in ports]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *nodes,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for port in ports:
            _until(lambda p=port: "cluster_state:ok" in _cli(p, "cluster", "info"))
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def _until(condition: Callable[[], bool], limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the local Redis Cluster did not come up")
        time.sleep(0.1)


def keys_per_node(ports: list[int]) -> list[int]:
    """How many keys each node holds."""
    return [int(_cli(port, "dbsize").strip() or 0) for port in ports]
