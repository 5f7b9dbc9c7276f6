"""Where the CPU of one execution goes, by component, against `docker run --rm` of the same image.

    python -m loadtests.bench_cpu [--runs 200] [--clients 4] [--baseline-runs 40]

Runs as root on this host's cgroup v1 (cgroupfs driver). Each part is counted where it can be:
- long-lived processes (dockerd, containerd, `coderunner dev`, redis-server, kernel threads):
  utime + stime (+ reaped children's) from /proc/<pid>/stat, before and after;
- containers: the `docker` cpuacct cgroup, which keeps the usage of removed children (a
  container is gone right after its run), less other users' containers, polled by label;
- shims and runc exit before they can be read: for the run, containerd is moved into a cpuacct
  cgroup of its own, which the shims it spawns, and their runc, inherit (cpuacct only counts);
- the engine (dockerd, containerd, shims) serves other users too: ours is our share of the
  containers started meanwhile; a machine with nobody else on it gives the clean figures;
- the rest of the machine's CPU (/proc/stat) is "unattributed": irq time, exited processes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loadtests.harness import IMAGE, own_server, post
from poolmgr.sandbox import LABEL_WORKER

CGROOT = Path("/sys/fs/cgroup/cpuacct")
DOCKER_CG = CGROOT / "docker"
SHIM_CG = CGROOT / "coderunner-bench-cpu"
CONFIGS = Path("/var/lib/docker/containers")
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
POLL_S = 0.02  # what polling misses at a container's end, the parent cgroup still has
HELLO = "print('hello')"
WARMUP_RUNS = 30
ROWS = (
    "dockerd", "containerd", "shims + runc", "containers (runc init, agent, program)",
    "coderunner dev (API + worker)", "redis-server", "docker CLI", "kernel threads",
    "unattributed (irq, exited processes)",
)  # fmt: skip
EXCLUDED = (
    "load generator (this script)", "other users' containers + their engine share",
    "other processes",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ProcStat:
    comm: str
    ppid: int
    start: int  # starttime, in ticks since boot: tells a reused pid apart
    own: int  # utime + stime, ticks
    reaped: int  # cutime + cstime: children it has waited for


NEW = ProcStat("", 0, -1, 0, 0)  # what a process started during the run had before it


def parse_pid_stat(text: str) -> ProcStat:
    """A /proc/<pid>/stat line; comm may hold spaces and ')', so split at the last ')'."""
    head, _, rest = text.rpartition(")")
    f = rest.split()  # f[0] is field 3 (state): field n is f[n - 3]
    own, reaped = int(f[11]) + int(f[12]), int(f[13]) + int(f[14])
    return ProcStat(head.partition("(")[2], int(f[1]), int(f[19]), own, reaped)


def busy_ms(proc_stat: str) -> float:
    """Machine CPU time spent so far (user, nice, system, irq, softirq), from /proc/stat."""
    ticks = [int(v) for v in proc_stat.splitlines()[0].split()[1:]]
    return sum(ticks[i] for i in (0, 1, 2, 5, 6)) * TICK_MS


def cpuacct_path(proc_cgroup: str) -> str:
    """The cpuacct cgroup in a /proc/<pid>/cgroup text (v1: `2:cpuacct:/docker/ID`)."""
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            return path
    return "/"


def rows_of(pid: int, delta: ProcStat, cgroup: str, server: int) -> list[tuple[str, int]]:
    """What one process's CPU over the run (`delta`, ticks) counts as; nothing when its cgroup
    is counted instead."""
    if delta.comm == "containerd":  # it sits in the shims' cgroup, and reaps only shims
        return [("containerd", delta.own)]
    if cgroup != "/":
        return []
    if pid == os.getpid():  # its children are the baseline's docker CLIs
        return [(EXCLUDED[0], delta.own), ("docker CLI", delta.reaped)]
    if 2 in (pid, delta.ppid):
        return [("kernel threads", delta.own)]
    if delta.comm == "dockerd":
        return [("dockerd", delta.own + delta.reaped)]
    if pid == server:
        return [("coderunner dev (API + worker)", delta.own + delta.reaped)]
    if delta.ppid == server:
        return [("redis-server", delta.own + delta.reaped)]
    return [(EXCLUDED[2], delta.own)]


def _read(path: Path) -> str | None:
    with contextlib.suppress(OSError):
        return path.read_text()
    return None


def processes() -> dict[int, tuple[ProcStat, str]]:
    """Every process now, with its cpuacct cgroup."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        stat, cgroup = _read(Path("/proc", pid, "stat")), _read(Path("/proc", pid, "cgroup"))
        if stat and cgroup:  # else it has just exited
            found[int(pid)] = (parse_pid_stat(stat), cpuacct_path(cgroup))
    return found


class ContainerSampler(threading.Thread):
    """Polls each container's cpuacct usage while it exists: ours (by worker label) or not."""

    def __init__(self, worker: str) -> None:
        super().__init__(daemon=True)
        self.worker, self.lock, self.measuring = worker, threading.Lock(), False
        self.last: dict[str, int] = {}
        self.ours: dict[str, bool] = {}
        self.seen: dict[bool, int] = {True: 0, False: 0}  # ns while measuring, ours / others'
        self.new: dict[bool, int] = {True: 0, False: 0}  # containers started while measuring

    def run(self) -> None:
        while True:
            time.sleep(POLL_S)
            self.poll()

    def poll(self, measuring: bool | None = None) -> None:
        """Read each container's usage; then start (True) or end (False) the measured sums."""
        with self.lock:
            for entry in os.scandir(DOCKER_CG):
                usage = _read(Path(entry.path, "cpuacct.usage"))
                if usage and self._labelled(entry.name):
                    ours = self.ours[entry.name]
                    if self.measuring:
                        self.new[ours] += entry.name not in self.last
                        self.seen[ours] += int(usage) - self.last.get(entry.name, 0)
                    self.last[entry.name] = int(usage)
            if measuring:
                self.seen, self.new = {True: 0, False: 0}, {True: 0, False: 0}
            self.measuring = self.measuring if measuring is None else measuring

    def _labelled(self, cid: str) -> bool:
        if cid not in self.ours and (text := _read(CONFIGS / cid / "config.v2.json")):
            labels = json.loads(text)["Config"].get("Labels") or {}
            self.ours[cid] = labels.get(LABEL_WORKER) == self.worker
        return cid in self.ours

    def idle_ours(self) -> list[float]:
        """CPU ms so far of our containers that exist now (after a pause: the warm ones)."""
        self.poll()
        alive = {e.name for e in os.scandir(DOCKER_CG)}
        return [v / 1e6 for cid, v in self.last.items() if self.ours[cid] and cid in alive]


@contextlib.contextmanager
def shims_counted() -> Iterator[None]:
    """containerd in a cpuacct cgroup of its own, and so every shim and runc it spawns."""
    containerd = [p for p, (s, _) in processes().items() if s.comm == "containerd"]
    SHIM_CG.mkdir(exist_ok=True)
    (SHIM_CG / "cgroup.procs").write_text(str(containerd[0]))
    try:
        yield
    finally:  # everything back, so the cgroup can go
        for _ in range(50):
            for pid in (SHIM_CG / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):  # gone meanwhile
                    (CGROOT / "cgroup.procs").write_text(pid)
            with contextlib.suppress(OSError):
                SHIM_CG.rmdir()
                break
            time.sleep(0.1)


def snapshot() -> tuple[float, dict[int, tuple[ProcStat, str]], int, int]:
    """Machine CPU ms, every process, and the docker and shims cgroups' usage (ns)."""
    docker, shims = (int((cg / "cpuacct.usage").read_text()) for cg in (DOCKER_CG, SHIM_CG))
    return busy_ms(Path("/proc/stat").read_text()), processes(), docker, shims


def measure(
    sampler: ContainerSampler, one: Callable[[], str], runs: int, width: int
) -> tuple[dict[str, float], int, float]:
    """CPU ms by row over `runs` hello worlds by `one`, `width` at a time (each started when
    one of them ends), the runs, and their wall seconds."""
    sampler.poll(measuring=True)
    (busy0, procs0, docker0, shims0), t0 = snapshot(), time.monotonic()
    with ThreadPoolExecutor(width) as threads:
        failed = sum(out != "hello\n" for out in threads.map(lambda _: one(), range(runs)))
    wall, (busy1, procs1, docker1, shims1) = time.monotonic() - t0, snapshot()
    sampler.poll(measuring=False)
    if failed:
        raise RuntimeError(f"{failed} of {runs} runs did not print hello")
    children = [p for p, (s, _) in procs1.items() if s.ppid == os.getpid()]
    server = next((p for p in children if procs1[p][0].comm.startswith("python")), -1)
    rows: dict[str, float] = defaultdict(float)
    for pid, (stat, cgroup) in procs1.items():
        was = procs0.get(pid, (NEW, ""))[0]
        was = was if was.start == stat.start else NEW
        delta = dataclasses.replace(stat, own=stat.own - was.own, reaped=stat.reaped - was.reaped)
        for name, ticks in rows_of(pid, delta, cgroup, server):
            rows[name] += ticks * TICK_MS
    # The engine serves every user: ours is our share of the containers started meanwhile.
    ours = sampler.new[True] / max(1, sampler.new[True] + sampler.new[False])
    rows["shims + runc"] = (shims1 - shims0) / 1e6 - rows["containerd"]
    rows[EXCLUDED[1]] = sampler.seen[False] / 1e6
    for name in ROWS[:3]:
        rows[EXCLUDED[1]] += rows[name] * (1 - ours)
        rows[name] *= ours
    rows[ROWS[3]] = (docker1 - docker0 - sampler.seen[False]) / 1e6
    rows[ROWS[-1]] = busy1 - busy0 - sum(rows.values())
    rows["polled"], rows["started"], rows["others"] = (  # not CPU: shown apart
        sampler.seen[True] / 1e6, sampler.new[True], sampler.new[False])  # fmt: skip
    return rows, runs, wall


def service_run(base: str) -> str:
    reply = post(base, "/api/v1/execute?wait=true", {"language": "python", "code": HELLO})
    return str(reply.get("stdout"))


def docker_run(worker: str) -> str:
    """The same program by `docker run --rm` of the same image, labelled ours."""
    cmd = [
        "docker", "run", "--rm", "--network", "none", "--label", f"{LABEL_WORKER}={worker}",
        "--entrypoint", "python3", IMAGE, "-c", HELLO,
    ]  # fmt: skip
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def report(title: str, rows: dict[str, float], executions: int, wall: float) -> float:
    """Print the table; the CPU ms of one execution."""
    total = sum(rows[name] for name in ROWS)
    print(f"\n{title}: {executions} executions in {wall:.1f} s ({executions / wall:.1f}/s)")
    print(f"  {'component':40} {'CPU ms':>8} {'ms/exec':>8} {'share':>6}")
    for name in (*(n for n in ROWS if rows[n]), "total"):
        ms = total if name == "total" else rows[name]
        print(f"  {name:40} {ms:8.0f} {ms / executions:8.1f} {100 * ms / total:5.1f}%")
    for name in EXCLUDED:
        print(f"  not counted, {name}: {rows[name]:.0f} ms")
    print(f"  containers started: {rows['started']:.0f}; their CPU by polling each while it"
          f" lives: {rows['polled']:.0f} ms (misses its end)")  # fmt: skip
    if rows["others"]:
        print(f"  other users started {rows['others']:.0f} containers meanwhile: a noisy figure")
    cores = os.cpu_count() or 1
    print(f"  ceiling on {cores} cores: {cores * 1000 * executions / total:.1f} executions/s")
    return total / executions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--baseline-runs", type=int, default=40)
    args = parser.parse_args()
    if not os.access(CGROOT / "cgroup.procs", os.W_OK) or not DOCKER_CG.is_dir():
        sys.exit(f"needs root, cgroup v1 cpuacct and Docker's cgroupfs driver ({DOCKER_CG})")
    worker = f"bench-cpu-{os.getpid()}"
    sampler = ContainerSampler(worker)
    sampler.start()
    with shims_counted():
        # A cluster of its own: its reaper and other servers' leave each other's containers be.
        env = {"WORKER_LANGUAGES": "python", "WORKER_ID": worker, "CLUSTER": worker}
        with own_server(**{f"CODERUNNER_{k}": v for k, v in env.items()}) as base:
            one = functools.partial(service_run, base)
            measure(sampler, one, WARMUP_RUNS, args.clients)  # the pool learns the demand
            service = measure(sampler, one, args.runs, args.clients)
            time.sleep(1.5)  # the pool refills, and its new containers go idle
            warm = sampler.idle_ours()
        per_execution = report(f"code-runner, {args.clients} clients", *service)
        if warm:
            print(f"  warm-up of one container (an idle warm one's cgroup, median of {len(warm)}):"
                  f" {statistics.median(warm):.1f} ms")  # fmt: skip
        one = functools.partial(docker_run, worker)
        measure(sampler, one, 4, 4)  # caches
        baseline = measure(sampler, one, args.baseline_runs, 4)
        per_run = report("docker run --rm, 4 at a time", *baseline)
    print(f"\ndocker run --rm takes {per_run / per_execution:.1f}x the CPU of an execution here")


if __name__ == "__main__":
    main()
