"""Warm-path latency benchmark, for a python hello world, against `docker run --rm` of the same
image, in one run: POST -> first stdout frame and -> exit frame on `/ws/execution`, and an
editor's `run` -> first stdout and -> exit over one open `/ws/run` socket.

    python -m loadtests.bench_latency [--runs 40] [--server URL]

Without --server it starts its own `coderunner dev` (private redis) on a free port.
Prints p50/p95 and the ratios the project's goals are stated in.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from collections.abc import Iterator
from contextlib import nullcontext
from urllib.parse import urlparse

from websockets.sync.client import connect

from loadtests.harness import IMAGE, own_server, pct, time_command

HELLO = "print('hello, world')"


def docker_run_baseline(runs: int) -> list[float]:
    """`docker run --rm` of the same image and program, as a user would time it."""
    cmd = [
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "python3",
        IMAGE,
        "-c",
        HELLO,
    ]
    return time_command(cmd, runs, "hello, world\n")


def one_execution(
    base: str, language: str = "python", code: str = HELLO
) -> tuple[float, float, str]:
    """(ms to first stdout frame, ms to exit frame, warm|cold), both from the POST."""
    url = urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    body = json.dumps({"language": language, "code": code})
    t0 = time.perf_counter()
    conn.request("POST", "/api/v1/execute", body, {"Content-Type": "application/json"})
    reply = json.loads(conn.getresponse().read())
    conn.close()
    with connect(f"ws://{url.hostname}:{url.port}{reply['websocket_url']}") as ws:
        return _timed(iter(ws), t0)


def _timed(frames: Iterator[str | bytes], t0: float) -> tuple[float, float, str]:
    """(ms to the first stdout frame, ms to the exit frame, warm|cold) of one execution."""
    first = None
    for raw in frames:
        frame = json.loads(raw)
        if frame["type"] == "stdout" and first is None:
            first = (time.perf_counter() - t0) * 1e3
        elif frame["type"] == "exit":
            done = (time.perf_counter() - t0) * 1e3
            assert first is not None and frame["exit_code"] == 0, frame
            return first, done, frame["start"]
        elif frame["type"] == "error":
            raise RuntimeError(frame)
    raise RuntimeError("socket closed without an exit frame")


class EditorSession:
    """One `/ws/run` socket kept open across runs, as an editor keeps it."""

    def __init__(self, base: str) -> None:
        url = urlparse(base)
        self._ws = connect(f"ws://{url.hostname}:{url.port}/ws/run")
        self._run = json.dumps({"type": "run", "language": "python", "code": HELLO})

    def run(self) -> tuple[float, float, str]:
        """(ms to first stdout frame, ms to exit frame, warm|cold), both from the send."""
        t0 = time.perf_counter()
        self._ws.send(self._run)
        return _timed(iter(self._ws), t0)

    def close(self) -> None:
        self._ws.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--server", help="an already running code-runner (default: start one)")
    parser.add_argument("--pause", type=float, default=0.4, help="seconds between runs (refill)")
    args = parser.parse_args()

    print(f"docker run --rm baseline: {args.runs} runs ...", flush=True)
    baseline = docker_run_baseline(args.runs)
    server = nullcontext(args.server) if args.server else own_server(CODERUNNER_POOL_MIN="2")
    with server as base:
        one_execution(base)  # first request: connection set-up, imports
        firsts, dones, starts = [], [], []
        print(f"code-runner warm path: {args.runs} runs ...", flush=True)
        for _ in range(args.runs):
            time.sleep(args.pause)
            first, done, start = one_execution(base)
            firsts.append(first)
            dones.append(done)
            starts.append(start)
        print(f"code-runner over one /ws/run socket: {args.runs} runs ...", flush=True)
        session = EditorSession(base)
        session.run()
        ws_firsts, ws_dones = [], []
        for _ in range(args.runs):
            time.sleep(args.pause)
            first, done, start = session.run()
            ws_firsts.append(first)
            ws_dones.append(done)
            starts.append(start)
        session.close()
    warm = starts.count("warm")
    rows = [
        ("docker run --rm (python hello)", baseline),
        ("POST -> first stdout frame", firsts),
        ("POST -> exit frame", dones),
        ("/ws/run run -> first stdout frame", ws_firsts),
        ("/ws/run run -> exit frame", ws_dones),
    ]
    print(f"\n{'measure':34} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for name, values in rows:
        p50, p95, mean = pct(values, 0.5), pct(values, 0.95), statistics.mean(values)
        print(f"{name:34} {p50:8.1f} {p95:8.1f} {mean:8.1f}")
    ratio = pct(dones, 0.5) / pct(baseline, 0.5)
    print(f"\nwarm starts: {warm}/{len(starts)}")
    print(f"exit p50 / docker run p50 = {ratio:.3f}  (goal <= 0.25)")
    print(f"first-output p50 = {pct(firsts, 0.5):.1f} ms  (goal < 15 ms)")
    print(
        f"/ws/run: first output p50 {pct(ws_firsts, 0.5):.1f} ms (goal < 6 ms),"
        f" exit p50 {pct(ws_dones, 0.5):.1f} ms (goal < 12 ms)"
    )


if __name__ == "__main__":
    main()
