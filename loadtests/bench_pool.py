"""Pool benchmark, in one run on this machine:

1. the churn ceiling: cold create + run + destroy per second, through the worker's own pool code;
2. Poisson arrivals at 50% of that ceiling for --duration seconds through a real `coderunner dev`:
   cold-start rate (goal < 1%), latency, claim latency (job read -> code written; goal p50 < 5 ms);
3. a burst of 10x the warm pool at once: every execution completes, none lost.

    python -m loadtests.bench_pool [--duration 120] [--churn-seconds 15]
"""

from __future__ import annotations

import argparse
import random
import threading
import time
import urllib.request
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import anyio

from loadtests.harness import own_server, pct, post
from poolmgr.engine import Engine
from poolmgr.executor import agent_job
from poolmgr.pool import Pool
from runtimes import wire
from runtimes.agent import protocol as agent
from runtimes.registry import RUNTIMES
from runtimes.settings import PoolPolicy, Settings

HELLO = "print('hello')"
WARMUP_S = 10.0  # the pool starts at its min and learns the demand


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
        tg.start_soon(pool.run)
        async with anyio.create_task_group() as workers:
            for _ in range(concurrency):
                workers.start_soon(loop)
        tg.cancel_scope.cancel()
    return done / (time.monotonic() - started)


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


def burst(base: str, size: int) -> None:
    gate = threading.Barrier(size)

    def one() -> dict[str, Any]:
        gate.wait()
        return _run(base)

    started = time.monotonic()
    with ThreadPoolExecutor(size) as threads:
        results = list(threads.map(lambda _: one(), range(size)))
    _summarise(f"burst of {size}", results, time.monotonic() - started)


def _warm_containers(base: str) -> int:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith('code_runner_warm_containers{language="python"}'):
                return int(float(line.split()[-1]))
    raise RuntimeError("no code_runner_warm_containers metric")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120)
    parser.add_argument("--churn-seconds", type=float, default=15)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    ceiling = anyio.run(_churn, args.churn_seconds, 4)
    print(f"churn ceiling: {ceiling:.1f} containers/s (cold create + run + destroy, 4 at a time)")
    with own_server(CODERUNNER_WORKER_SLOTS="16", CODERUNNER_POOL_MAX="16") as base:
        poisson(base, ceiling / 2, args.duration, args.seed)
        time.sleep(5)  # the pool refills to its (held) target
        warm = _warm_containers(base)
        print(f"\nwarm python containers before the burst: {warm}")
        burst(base, 10 * max(1, warm))


if __name__ == "__main__":
    main()
