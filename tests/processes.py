"""Real `coderunner` processes for tests: started like a user would, stopped like Kubernetes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(command: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """`coderunner <command>` with `CODERUNNER_<KEY>=value` for each keyword, logging to `log`."""
    variables = {**os.environ, **{f"CODERUNNER_{k.upper()}": v for k, v in env.items()}}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "coderunner", command],
            env=variables,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL after 75 s (past a 55 s drain); the exit code."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(75)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
