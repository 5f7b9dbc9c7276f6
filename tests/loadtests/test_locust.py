"""The Locust editor users, headless for a few seconds against the session's server."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from tests.client import Client

LOCUSTFILE = Path(__file__).parents[2] / "loadtests" / "locustfile.py"
# Not imported from the locustfile: importing locust monkey-patches this process with gevent.
REQUEST_TYPES = ("first output", "exit")


def test_editor_users_run_without_failures(server: Client, tmp_path: Path) -> None:
    # The session's server has the front door's per-client limits off: 4 users from one
    # address are 4 editors, not one client over its concurrency cap.
    prefix = tmp_path / "run"
    cmd = [
        *(sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary"),
        *("-u", "4", "-r", "4", "--run-time", "10s", "--stop-timeout", "10"),
        *("--host", server.base, "--csv", str(prefix)),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    with open(f"{prefix}_by_type.csv", newline="") as f:
        rows = {row["type"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(REQUEST_TYPES), done.stderr[-2000:]
    for kind in REQUEST_TYPES:
        assert int(rows[kind]["runs"]) > 0, rows
    with open(f"{prefix}_stats.csv", newline="") as f:
        failures = {(r["Type"], r["Name"]): int(r["Failure Count"]) for r in csv.DictReader(f)}
    assert failures[("", "Aggregated")] == 0, (failures, done.stderr[-2000:])
    assert done.returncode == 0, done.stderr[-2000:]
