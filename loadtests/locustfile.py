"""Locust users that behave like editor users of code-runner, over one `/ws/run` socket each.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000

Each user keeps one `/ws/run` socket open (reconnecting when it closes), sends a run from a
weighted mix of programs, reads until the run's `exit` frame, thinks 1-3 s, and repeats.
Every run reports two request types, named after the program:
- `first output`: ms from sending `run` to the first stdout frame;
- `exit`: ms from sending `run` to the `exit` frame.
A run that has not ended `timeout_s` + 15 s after it was sent, an error frame, an unexpected
exit status or a closed socket is a failure of both.

With `--csv PREFIX`, `PREFIX_by_type.csv` gets one row per request type over all programs
(runs, failures, runs/s, p50/p95/p99 ms): Locust's own CSVs aggregate only over both types.

Locust monkey-patches sockets and threads with gevent, so the synchronous `websockets`
client (one receiving thread per socket) runs as greenlets and does not block the others.
"""

from __future__ import annotations

import csv
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from locust import User, between, events, task
from locust.env import Environment
from locust.stats import StatsEntry
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

GRACE_S = 15.0  # how long past its timeout a run may take before it counts as never ended
REQUEST_TYPES = ("first output", "exit")
BY_TYPE_FIELDS = ("type", "runs", "failures", "runs_per_s", "p50_ms", "p95_ms", "p99_ms")


@dataclass(frozen=True)
class Program:
    """One kind of run an editor user sends, and what its end should look like."""

    name: str
    language: str
    code: str
    weight: int
    timeout_s: float = 10.0
    stdin: str | None = None  # sent over the socket once the run is `running`
    status: str = "completed"  # the exit frame's expected status
    fields: dict[str, Any] = field(default_factory=dict)

    def frame(self) -> str:
        body = {"type": "run", "language": self.language, "code": self.code}
        body["timeout_s"] = self.timeout_s
        if self.stdin is not None:
            body["interactive"] = True
        return json.dumps(body | self.fields)


PROGRAMS = (
    Program("python hello", "python", "print('hello, world')", weight=30),
    Program("python loop", "python", "for i in range(20):\n    print('line', i)", weight=20),
    Program("python input", "python", "name = input()\nprint('hi', name)", 15, stdin="ada\n"),
    Program("javascript hello", "javascript", "console.log('hello, world')", weight=15),
    Program("bash hello", "bash", "echo hello, world", weight=18),
    Program("python runaway", "python", "while True:\n    pass", 2, 2.0, status="timed_out"),
)


class RunFailed(Exception):
    """A run that did not end as the program should: the frame or reason says why."""


class EditorUser(User):  # type: ignore[misc]
    """An editor session: one `/ws/run` socket, one run at a time, thinking in between."""

    wait_time = between(1, 3)

    def on_start(self) -> None:
        url = urlparse(self.host)
        scheme = "wss" if url.scheme == "https" else "ws"
        self._url = f"{scheme}://{url.netloc}/ws/run"
        self._ws: ClientConnection | None = None
        self._first: float | None = None  # ms to the current run's first stdout frame

    def on_stop(self) -> None:
        if self._ws is not None:
            self._ws.close()

    @task
    def edit_and_run(self) -> None:
        program = random.choices(PROGRAMS, weights=[p.weight for p in PROGRAMS])[0]
        self._first = None
        t0 = time.perf_counter()
        try:
            ws = self._socket()
            t0 = time.perf_counter()  # a run's times start at its send, not at a reconnect
            self._one_run(ws, program, t0)
        except (RunFailed, ConnectionClosed, OSError, TimeoutError) as exc:
            if not isinstance(exc, RunFailed):
                self._drop_socket()  # reconnect on the next run
            elapsed = (time.perf_counter() - t0) * 1e3
            if self._first is None:
                self._report("first output", program.name, elapsed, exc)
            self._report("exit", program.name, elapsed, exc)

    def _one_run(self, ws: ClientConnection, program: Program, t0: float) -> None:
        """Send `program` and read its frames to its `exit` frame, reporting both times."""
        ws.send(program.frame())
        deadline = t0 + program.timeout_s + GRACE_S
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                self._drop_socket()  # the run may still send frames: never reuse this socket
                raise RunFailed(f"no exit frame within {program.timeout_s + GRACE_S:.0f} s")
            frame = json.loads(ws.recv(timeout=left))
            kind = frame["type"]
            if kind == "stdout" and self._first is None:
                self._first = (time.perf_counter() - t0) * 1e3
                self._report("first output", program.name, self._first)
            elif kind == "status" and frame["status"] == "running" and program.stdin:
                ws.send(json.dumps({"type": "stdin", "data": program.stdin, "eof": True}))
            elif kind == "error":
                raise RunFailed(f"{frame['code']}: {frame.get('message', '')}")
            elif kind == "exit":
                self._exit(program, frame, t0)
                return

    def _exit(self, program: Program, frame: dict[str, Any], t0: float) -> None:
        if frame["status"] != program.status:
            raise RunFailed(f"exit status {frame['status']}, expected {program.status}")
        if self._first is None and program.status == "completed":
            raise RunFailed("exit without any stdout frame")
        self._report("exit", program.name, (time.perf_counter() - t0) * 1e3)

    def _socket(self) -> ClientConnection:
        if self._ws is None:
            self._ws = connect(self._url, open_timeout=10, max_size=None)
        return self._ws

    def _drop_socket(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def _report(self, kind: str, name: str, ms: float, exc: BaseException | None = None) -> None:
        self.environment.events.request.fire(
            request_type=kind,
            name=name,
            response_time=ms,
            response_length=0,
            exception=exc,
            context={},
        )


def by_type(environment: Environment, kind: str) -> dict[str, Any]:
    """One request type's stats over every program: a row of `PREFIX_by_type.csv`."""
    total = StatsEntry(environment.stats, kind, kind)
    for entry in environment.stats.entries.values():
        if entry.method == kind:
            total.extend(entry)
    pct = total.get_response_time_percentile
    return {
        "type": kind,
        "runs": total.num_requests,
        "failures": total.num_failures,
        "runs_per_s": round(total.total_rps, 2),
        **{f"p{q}_ms": pct(q / 100) if total.num_requests else "" for q in (50, 95, 99)},
    }


@events.quitting.add_listener  # type: ignore[misc]
def write_by_type(environment: Environment, **_: Any) -> None:
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix:
        return
    with open(f"{prefix}_by_type.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, BY_TYPE_FIELDS)
        writer.writeheader()
        writer.writerows(by_type(environment, kind) for kind in REQUEST_TYPES)
