"""What one Redis carries: executions/s and output frames/s, from the Redis CPU each costs.

    python -m loadtests.bench_redis [--seconds 10] [--processes 3] [--tasks 16]

Drives the product's own scripts (submit, claim, advance, appends, finish, ack) against a
private redis-server from several client processes, with no containers: what a fleet of
workers and API processes asks of Redis per execution. Redis is single-threaded, so its
capacity is one core: the figures are executions (and frames) per second of Redis CPU,
measured from its INFO counters, for runs with 0 and with 20 output frames each; the
difference gives the cost of one frame.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
import uuid

from redis.asyncio import Redis

from coderunner.redis_server import EmbeddedRedis
from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.transitions import Transitions

FRAME = wire.encode(wire.OutputEvent("stdout", "x" * 60 + "\n", 0))
GROUP_STREAM = keys.job_stream("python")


async def _one(redis: Redis, t: Transitions, frames: int, worker: str) -> None:
    job = wire.Job(
        keys.new_execution_id("python"), "python", (wire.SourceFile("main.py", "print(1)"),)
    )
    await t.submit(job)
    reply = await redis.xreadgroup(keys.WORKER_GROUP, worker, {GROUP_STREAM: ">"}, count=1)
    entry_id = reply[0][1][0][0].decode() if reply else "0-0"
    owner = f"{worker}:{entry_id}"
    await t.advance(job, owner, [Status.PREPARING, Status.RUNNING])
    for seq in range(frames):
        await t.append(job, owner, seq, [FRAME], 60)
    result = wire.Result(job.execution_id, "python", Status.COMPLETED, exit_code=0)
    await t.finish(0, owner, result, 60)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xack(GROUP_STREAM, keys.WORKER_GROUP, entry_id)
        pipe.xdel(GROUP_STREAM, entry_id)
        await pipe.execute()


async def _drive(url: str, seconds: float, tasks: int, frames: int, counter: list[int]) -> None:
    redis = Redis.from_url(url, max_connections=tasks + 2)
    t = Transitions(redis)
    deadline = time.monotonic() + seconds
    worker = uuid.uuid4().hex[:8]

    async def loop() -> None:
        while time.monotonic() < deadline:
            await _one(redis, t, frames, worker)
            counter[0] += 1

    await asyncio.gather(*(loop() for _ in range(tasks)))
    await redis.aclose()


def _process(url: str, seconds: float, tasks: int, frames: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    counter = [0]
    asyncio.run(_drive(url, seconds, tasks, frames, counter))
    out.put(counter[0])


async def _cpu(url: str) -> float:
    redis = Redis.from_url(url)
    info = await redis.info("cpu")
    await redis.aclose()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def _setup(url: str) -> None:
    redis = Redis.from_url(url)
    await redis.flushall()
    await redis.xgroup_create(GROUP_STREAM, keys.WORKER_GROUP, id="0", mkstream=True)
    await redis.aclose()


def measure(
    url: str, seconds: float, processes: int, tasks: int, frames: int
) -> tuple[float, float]:
    """(executions per second achieved, Redis CPU seconds per execution)."""
    asyncio.run(_setup(url))
    before = asyncio.run(_cpu(url))
    out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [
        multiprocessing.Process(target=_process, args=(url, seconds, tasks, frames, out))
        for _ in range(processes)
    ]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    done = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    elapsed = time.monotonic() - t0
    cpu = asyncio.run(_cpu(url)) - before
    return done / elapsed, cpu / max(done, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=16)
    args = parser.parse_args()
    with EmbeddedRedis() as redis:
        rows = []
        for frames in (0, 20):
            print(f"{frames} frames per execution: {args.seconds:g} s ...", flush=True)
            rate, cpu = measure(redis.url, args.seconds, args.processes, args.tasks, frames)
            rows.append((frames, rate, cpu))
    (_, _, base), (_, _, with_frames) = rows
    per_frame = max(0.0, (with_frames - base) / 20)
    header = ("frames/exec", "achieved exec/s", "Redis CPU us/exec", "exec/s per Redis core")
    print("\n" + " ".join(f"{h:>{w}}" for h, w in zip(header, (11, 16, 18, 22), strict=True)))
    for frames, rate, cpu in rows:
        print(f"{frames:>11} {rate:>16.0f} {cpu * 1e6:>18.0f} {1 / cpu:>22.0f}")
    print(
        f"\none output frame costs {per_frame * 1e6:.1f} us of Redis CPU:"
        f" ~{1 / per_frame if per_frame else float('inf'):.0f} frames/s per Redis core"
    )


if __name__ == "__main__":
    main()
