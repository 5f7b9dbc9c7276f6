"""A bounded soak: steady load for --minutes, then checks that nothing accumulated.

    python -m loadtests.soak [--minutes 10] [--rate 3.0] [--seed 1]

Poisson arrivals at --rate/s (default: half the ~6 runs/s of the README's load test) of a
python mix, half waited for (`?wait=true`), half polled, against a private `coderunner dev`.
It passes when no request failed, every result was right, no execution was lost, the dev
process's RSS grew less than max(20 MiB, 10 %) after the warm-up, its worker held only
warm containers once idle and none once stopped, and no Redis key outlived its purpose
(see `stray_keys`)."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from redis import Redis

from coderunner.redis_server import EmbeddedRedis
from loadtests.harness import call, post, served, warm_containers
from poolmgr.sandbox import LABEL_WORKER
from runtimes import keys
from runtimes.lifecycle import TERMINAL
from runtimes.registry import RUNTIMES

CAPACITY_PER_S = 6.0  # measured, README "Load test"; the soak runs at half of it
RESULT_TTL_S = 60  # short, so Redis holds only the last minute's results: a steady state
WARMUP_S = 20.0  # load before the baseline RSS: imports, pools and caches have settled
SAMPLE_S = 30.0
LOST_AFTER_S = 60.0  # not terminal this long after the load ended: lost
POLL_S = 0.2
STRAY_REMOVED = "removing stray container"  # poolmgr/reaper.py's log line
IDLE_SETTLE_S = 15.0  # for refills and removals under way when the load stops
MIB = 1024 * 1024
Sample = tuple[float, int, int]  # seconds since the start, RSS of dev and redis
# Keys with no TTL by design: the job streams (they carry the consumer group), the dead
# letters (kept for inspection, capped), the active set (empty once all ended), the runtime
# versions (one field per language) and the set of reporting workers (pruned by the app).
STREAMS = {stream for language in RUNTIMES for stream in keys.job_streams(language)}
ACTIVE = {keys.active(language) for language in RUNTIMES}
DEAD = {keys.dead_letters(language) for language in RUNTIMES}
PERMANENT = {*STREAMS, *DEAD, *ACTIVE, keys.RUNTIME_VERSIONS, keys.WORKER_LOADS}
RESULT_KINDS = (":exec:", ":out:")  # an execution's record and output: RESULT_TTL_S after it ends


@dataclass(frozen=True)
class Program:
    """A request of the mix, and the result it must have."""

    name: str
    weight: float
    body: dict[str, Any]
    status: str = "completed"
    stdout: str | None = None


LINES = "".join(f"{i}\n" for i in range(100))
PROGRAMS = [
    Program("hello", 0.49, {"code": "print('hello')"}, stdout="hello\n"),
    Program("loop", 0.29, {"code": "for i in range(100):\n    print(i)"}, stdout=LINES),
    Program("stdin", 0.20, {"code": "print(input()[::-1])", "stdin": "soak\n"}, stdout="kaos\n"),
    Program("runaway", 0.02, {"code": "while True:\n    pass", "timeout_s": 1}, "timed_out"),
]


@dataclass
class Outcome:
    """One request: its program and the last reply about its execution ({}: no reply)."""

    program: Program
    reply: dict[str, Any]

    @property
    def accepted(self) -> bool:
        return "execution_id" in self.reply

    @property
    def status(self) -> str:
        return str(self.reply.get("status", "refused" if self.reply else "no reply"))

    @property
    def right(self) -> bool:
        expected = self.program.stdout
        return self.status == self.program.status and expected in (None, self.reply["stdout"])


def settle(base: str, reply: dict[str, Any], deadline: float) -> dict[str, Any]:
    """Poll an accepted execution until it is terminal or `deadline` (monotonic) passes."""
    path = f"/api/v1/execution/{reply.get('execution_id')}"
    while "execution_id" in reply and reply["status"] not in TERMINAL:
        if time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
        with contextlib.suppress(OSError, ValueError):  # the next poll says more
            polled = call(base, "GET", path, timeout=30)
            reply = polled if "execution_id" in polled else reply  # a 404: gone unseen
    return reply


def submit(base: str, program: Program, wait: bool) -> Outcome:
    body = {"language": "python", **program.body}
    try:
        if wait:
            return Outcome(program, post(base, "/api/v1/execute?wait=true", body))
        reply = post(base, "/api/v1/execute", body)
    except (OSError, ValueError):
        return Outcome(program, {})
    limit = time.monotonic() + float(body.get("timeout_s", 10)) + LOST_AFTER_S
    return Outcome(program, settle(base, reply, limit))


def rss(pid: int) -> int:
    """Resident bytes of a process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@dataclass
class Watch:
    """RSS samples (dev, redis) and progress lines, from a thread of its own."""

    pids: tuple[int, int]
    futures: list[Future[Outcome]]
    series: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)

    def sample(self) -> tuple[int, int]:
        dev, redis = (rss(pid) for pid in self.pids)
        self.series.append((time.monotonic() - self.started, dev, redis))
        return dev, redis

    def run(self, warmup: float, every: float) -> None:
        self.stop.wait(warmup)
        self.sample()
        done = sum(f.done() for f in list(self.futures))
        while not self.stop.wait(every):
            dev, redis = self.sample()
            ended = [f.result() for f in list(self.futures) if f.done()]
            statuses = ", ".join(f"{s} {n}" for s, n in Counter(o.status for o in ended).items())
            print(
                f"[{self.series[-1][0]:5.0f} s] submitted {len(self.futures)}, done"
                f" {len(ended)} ({statuses}), {(len(ended) - done) / every:.1f}/s,"
                f" RSS dev {dev / MIB:.1f} MiB, redis {redis / MIB:.1f} MiB",
                flush=True,
            )
            done = len(ended)


def load(base: str, rate: float, seconds: float, seed: int, watch: Watch) -> list[Outcome]:
    """Poisson arrivals for `seconds`; every request's outcome, all threads joined."""
    rng = random.Random(seed)
    gaps = (rng.expovariate(rate) for _ in itertools.count())
    arrivals = itertools.takewhile(lambda t: t <= seconds, itertools.accumulate(gaps))
    every = min(SAMPLE_S, seconds / 4)
    monitor = threading.Thread(target=watch.run, args=(min(WARMUP_S, seconds / 3), every))
    monitor.start()
    try:
        with ThreadPoolExecutor(64) as threads:
            for i, t in enumerate(arrivals):
                time.sleep(max(0.0, watch.started + t - time.monotonic()))
                program = rng.choices(PROGRAMS, [p.weight for p in PROGRAMS])[0]
                watch.futures.append(threads.submit(submit, base, program, i % 2 == 0))
    finally:
        watch.stop.set()
        monitor.join()
    return [f.result() for f in watch.futures]


def stray_keys(redis: Redis, result_ttl_s: int) -> list[str]:
    """Keys left beyond their TTL: any without one but the PERMANENT keys, a result key
    kept longer than the results are, an execution still active, a job still queued."""
    stray = []
    for raw in redis.scan_iter(count=1000):
        key, ttl = raw.decode(), redis.ttl(raw)
        if key in PERMANENT or ttl == -2:  # -2: expired since the scan
            continue
        if ttl == -1:
            stray.append(f"{key} (no TTL)")
        elif any(kind in key for kind in RESULT_KINDS) and ttl > result_ttl_s:
            stray.append(f"{key} (TTL {ttl} s > {result_ttl_s} s)")
    for key in ACTIVE:
        if active := redis.zcard(key):
            stray.append(f"{key} ({active} executions not ended)")
    for stream in STREAMS:
        if entries := redis.xlen(stream):
            stray.append(f"{stream} ({entries} jobs left)")
    return stray


def containers_left(worker_id: str) -> int:
    """Containers of that worker on the engine, running or not."""
    with contextlib.closing(docker.from_env()) as client:
        label = f"{LABEL_WORKER}={worker_id}"
        return len(client.api.containers(all=True, filters={"label": label}))


def containers_beyond_pool(base: str, worker_id: str) -> int:
    """Once the server is idle every container of its worker is a warm one: any other was
    used, or lost track of, and never destroyed (a leak that the worker's own clean-up on
    the way out would otherwise hide)."""
    deadline = time.monotonic() + IDLE_SETTLE_S
    while (extra := containers_left(worker_id) - warm_containers(base)) > 0:
        if time.monotonic() > deadline:
            return extra
        time.sleep(0.5)  # a refill or a removal still under way
    return 0


def soak(minutes: float, rate: float, seed: int = 1) -> tuple[int, list[str]]:
    """Run the soak, print its progress and summary; (lost, reasons it failed)."""
    worker_id = f"soak-{uuid.uuid4().hex[:8]}"
    env = {
        "CODERUNNER_WORKER_ID": worker_id,
        "CODERUNNER_WORKER_LANGUAGES": "python",
        "CODERUNNER_RESULT_TTL_S": str(RESULT_TTL_S),
    }
    print(f"soak: {minutes:g} min at {rate:g}/s, worker {worker_id}", flush=True)
    with (
        EmbeddedRedis() as embedded,
        Redis.from_url(embedded.url) as redis,
        tempfile.TemporaryDirectory() as tmp,
    ):
        redis_pid = int(redis.info("server")["process_id"])
        log = Path(tmp) / "dev.log"
        with served(log, CODERUNNER_REDIS_URL=embedded.url, **env) as server:
            watch = Watch((server.pid, redis_pid), [])
            outcomes = load(server.base, rate, minutes * 60, seed, watch)
            deadline = time.monotonic() + LOST_AFTER_S
            for o in outcomes:
                if o.accepted and o.status not in TERMINAL:
                    o.reply = settle(server.base, o.reply, deadline)
            watch.sample()
            beyond = containers_beyond_pool(server.base, worker_id)
            stray = stray_keys(redis, RESULT_TTL_S)
            dead = sum(redis.xlen(key) for key in DEAD)
        # The worker's own sweep removes containers its pools lost track of once they are
        # two minutes old: each one it found is a leak the idle count above would miss.
        beyond += log.read_text(errors="replace").count(STRAY_REMOVED)
    left = containers_left(worker_id)
    return report(outcomes, watch.series, (beyond, left), stray, dead)


def report(
    outcomes: list[Outcome],
    series: list[Sample],
    containers: tuple[int, int],
    stray: list[str],
    dead: int,
) -> tuple[int, list[str]]:
    """Print the summary table and the verdict; (lost, reasons the soak failed)."""
    accepted = [o for o in outcomes if o.accepted]
    refused = len(outcomes) - len(accepted)
    lost = sum(o.status not in TERMINAL for o in accepted)
    ended = [o for o in accepted if o.status in TERMINAL]
    wrong = Counter(f"{o.program.name}: {o.status}" for o in ended if not o.right)
    (_, dev0, redis0), (_, dev1, redis1) = series[0], series[-1]
    growth, limit = dev1 - dev0, max(20 * MIB, dev0 // 10)
    rows: list[tuple[str, object, bool]] = [  # (name, value, whether it fails the soak)
        ("requests", len(outcomes), False),
        ("refused or unanswered", refused, refused > 0),
        ("statuses", dict(Counter(o.status for o in accepted)), False),
        ("wrong results", dict(wrong) or 0, bool(wrong)),
        ("lost", lost, lost > 0),
        ("dead letters", dead, dead > 0),
        ("containers beyond pool", containers[0], containers[0] > 0),
        ("containers left", containers[1], containers[1] > 0),
        ("keys beyond TTL", len(stray), bool(stray)),
        ("dev RSS MiB", f"{dev0 / MIB:.1f} -> {dev1 / MIB:.1f} ({growth / MIB:+.1f},"
         f" limit +{limit / MIB:.1f})", growth > limit),
        ("redis RSS MiB", f"{redis0 / MIB:.1f} -> {redis1 / MIB:.1f}", False),
        ("RSS series dev/redis",
         ", ".join(f"{t:.0f}s {d / MIB:.1f}/{r / MIB:.1f}" for t, d, r in series), False),
    ]  # fmt: skip
    print("\nsoak summary")
    for name, value, _ in rows:
        print(f"  {name:<24} {value}")
    for key in stray[:20]:
        print(f"    {key}")
    reasons = [f"{name} {value}" for name, value, fails in rows if fails]
    print("SOAK PASS" if not reasons else f"SOAK FAIL: {'; '.join(reasons)}", flush=True)
    return lost, reasons


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=CAPACITY_PER_S / 2, help="runs per second")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    _, reasons = soak(args.minutes, args.rate, args.seed)
    return 1 if reasons else 0


if __name__ == "__main__":
    sys.exit(main())
