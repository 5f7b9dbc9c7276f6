"""Pool benchmark, in one run on this machine, against baselines measured in the same run:

1. the churn ceiling: cold create + run + destroy per second, through the worker's own pool code,
   and 40 `docker run --rm` 4 at a time;
2. Poisson arrivals at 90% of that ceiling for --duration seconds through a real `coderunner dev`:
   cold-start rate (goal < 1%), latency, claim latency (job read -> code written; goal p50 < 5 ms);
3. a burst of 40 at once: all complete, none lost, at >= 1.5x the rate of the `docker run`s;
4. a closed loop of 4 clients, 300 runs: p95 at most 2x the mean latency that the throughput
   forces by Little's law (4 in the system / throughput).

    python -m loadtests.bench_pool [--duration 120] [--churn-seconds 15]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import anyio

from loadtests.harness import IMAGE, own_server, pct, post, warm_containers
from poolmgr.engine import Engine
from poolmgr.executor import agent_job
from poolmgr.pool import Pool
from runtimes import wire
from runtimes.agent import protocol as agent
from runtimes.registry import RUNTIMES
from runtimes.settings import PoolPolicy, Settings

HELLO = "print('hello')"
WARMUP_S = 10.0  # the pool starts at its min and learns the demand
BURST = 40


async def _churn(seconds: float, concurrency: int) -> float:
    """Cold container lifecycles completed per second, `concurrency` at a time."""
    settings = Settings(
        worker_id=f"bench-churn-{uuid.uuid4().hex[:6]}",
        pool_policies={"python": PoolPolicy(min=0, max=0)},
        max_concurrent_creates=concurrency,
    )
    engine = Engine(settings.docker_url)
    pool = Pool(RUNTIMES["python"], engine, settings, anyio.CapacityLimiter(concurrency))
    job = wire.Job("churn", "python", (wire.SourceFile("main.py", HELLO),))
    done = 0
    deadline = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            container = await pool.cold_start()
            await container.send_job(agent_job(job, pool.runtime))
            async for kind, _ in container.frames():
                if kind == agent.EXIT:
                    break
            await container.stream.aclose()
            await engine.remove(container.id)
            done += 1

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        await tg.start(pool.run)
        async with anyio.create_task_group() as workers:
            for _ in range(concurrency):
                workers.start_soon(loop)
        tg.cancel_scope.cancel()
    return done / (time.monotonic() - started)


def _docker_run_rate(runs: int, concurrency: int) -> float:
    """`docker run --rm` of a python hello per second, `concurrency` at a time."""
    cmd = ["docker", "run", "--rm", "--network", "none", IMAGE, "python3", "-c", HELLO]

    def one(_: int) -> None:
        subprocess.run(cmd, check=True, capture_output=True)

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as threads:
        list(threads.map(one, range(runs)))
    return runs / (time.monotonic() - started)


def _run(base: str) -> dict[str, Any]:
    return post(base, "/api/v1/execute?wait=true", {"language": "python", "code": HELLO})


def _summarise(name: str, results: list[dict[str, Any]], wall_s: float) -> None:
    completed = [r for r in results if r.get("status") == "completed"]
    cold = sum(r.get("start") == "cold" for r in results)
    total = [r["timings"]["total_ms"] for r in completed]
    claim = [r["timings"]["start_ms"] for r in completed if r["start"] == "warm"]
    print(f"\n{name}: {len(results)} executions in {wall_s:.1f} s")
    print(f"  completed {len(completed)}/{len(results)}, lost {len(results) - len(completed)}")
    print(f"  cold starts {cold} ({100 * cold / max(1, len(results)):.2f}%)")
    if total:
        print(f"  server total ms  p50 {pct(total, 0.5):7.1f}  p95 {pct(total, 0.95):7.1f}")
    if claim:
        print(f"  warm claim ms    p50 {pct(claim, 0.5):7.2f}  p95 {pct(claim, 0.95):7.2f}")


def poisson(base: str, rate: float, seconds: float, seed: int) -> None:
    rng = random.Random(seed)
    futures: list[Future[dict[str, Any]]] = []
    offsets: list[float] = []
    started = time.monotonic()
    with ThreadPoolExecutor(64) as threads:
        t = 0.0
        while True:
            t += rng.expovariate(rate)
            if t > seconds:
                break
            time.sleep(max(0.0, started + t - time.monotonic()))
            offsets.append(t)
            futures.append(threads.submit(_run, base))
    results = [f.result() for f in futures]
    _summarise(f"Poisson {rate:.1f}/s", results, time.monotonic() - started)
    arrivals = sorted(offsets)
    late = [r for t, r in zip(arrivals, results, strict=True) if t >= WARMUP_S]
    cold = sum(r.get("start") == "cold" for r in late)
    share = 100 * cold / max(1, len(late))
    print(f"  after the first {WARMUP_S:.0f} s: {cold}/{len(late)} cold ({share:.2f}%)")


def burst(base: str, size: int) -> float:
    """Executions per second of `size` submitted at once."""
    gate = threading.Barrier(size)

    def one() -> dict[str, Any]:
        gate.wait()
        return _run(base)

    started = time.monotonic()
    with ThreadPoolExecutor(size) as threads:
        results = list(threads.map(lambda _: one(), range(size)))
    wall_s = time.monotonic() - started
    _summarise(f"burst of {size}", results, wall_s)
    return size / wall_s


def closed_loop(base: str, clients: int, runs: int) -> None:
    """Each client submits its next run when the last one ends: latency at saturation."""
    latencies: list[float] = []
    results: list[dict[str, Any]] = []
    left = iter(range(runs))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                if next(left, None) is None:
                    return
            t0 = time.monotonic()
            result = _run(base)
            with lock:
                latencies.append((time.monotonic() - t0) * 1e3)
                results.append(result)

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as threads:
        for _ in range(clients):
            threads.submit(client)
    wall_s = time.monotonic() - started
    _summarise(f"closed loop, {clients} clients", results, wall_s)
    throughput = runs / wall_s
    little_ms = clients / throughput * 1e3  # the mean latency this throughput forces
    p95 = pct(latencies, 0.95)
    print(
        f"  {throughput:.1f}/s; client latency p50 {pct(latencies, 0.5):.0f} ms, p95 {p95:.0f} ms"
    )
    print(f"  Little's-law mean {little_ms:.0f} ms: p95 = {p95 / little_ms:.2f}x (goal <= 2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120)
    parser.add_argument("--churn-seconds", type=float, default=15)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    ceiling = anyio.run(_churn, args.churn_seconds, 4)
    print(f"churn ceiling: {ceiling:.1f} containers/s (cold create + run + destroy, 4 at a time)")
    docker_rate = _docker_run_rate(BURST, 4)
    print(f"docker run --rm: {docker_rate:.1f}/s ({BURST} runs, 4 at a time)")
    with own_server(CODERUNNER_WORKER_SLOTS="16", CODERUNNER_POOL_MAX="16") as base:
        poisson(base, ceiling * 0.9, args.duration, args.seed)
        time.sleep(5)  # the pool refills to its (held) target
        print(f"\nwarm python containers before the burst: {warm_containers(base)}")
        rate = burst(base, BURST)
        print(f"  {rate:.1f}/s = {rate / docker_rate:.2f}x docker run --rm (goal >= 1.5x)")
        time.sleep(5)
        closed_loop(base, 4, 300)


if __name__ == "__main__":
    main()
