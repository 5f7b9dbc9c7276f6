"""A worker in this process on its own Redis and the real engine: several languages at once,
runs stopped when the heartbeat lapses, Redis stalls not charged to the program, output
floods coalesced, and aborted queued jobs that cost no container."""

from __future__ import annotations

import dataclasses
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from poolmgr import metrics
from poolmgr.engine import Engine
from poolmgr.sandbox import LABEL_WORKER
from poolmgr.worker import Worker
from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.registry import RUNTIMES
from runtimes.settings import PoolPolicy, Settings
from runtimes.transitions import Transitions

pytestmark = pytest.mark.anyio
TWIN = "pytwin"  # a second, test-only language on the python image


@pytest.fixture
def twin(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A second runtime registered for this test: the python image under another name."""
    runtime = dataclasses.replace(RUNTIMES["python"], language=TWIN, aliases=())
    source, image = RUNTIMES["python"].image("coderunner"), runtime.image("coderunner")
    subprocess.run(["docker", "tag", source, image], check=True)
    monkeypatch.setitem(RUNTIMES, TWIN, runtime)
    try:
        yield TWIN
    finally:
        subprocess.run(["docker", "rmi", image], check=True, capture_output=True)


@asynccontextmanager
async def running_worker(redis: Redis, **overrides: Any) -> AsyncIterator[Worker]:
    """A worker with a unique id and cluster, stopped gracefully; no container left after."""
    policy = overrides.pop("policy", PoolPolicy(min=1, max=2))
    overrides.setdefault("worker_languages", ("python",))
    settings = Settings(
        worker_id=f"test-worker-{uuid.uuid4().hex[:8]}",
        cluster=f"test-{uuid.uuid4().hex[:8]}",
        pool_policies={language: policy for language in RUNTIMES},
        **overrides,
    )
    worker = Worker(settings, redis)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        yield worker
        await worker.stop()
        tg.cancel_scope.cancel()
    async with Engine(settings.docker_url) as engine:  # the worker has closed its own
        assert await engine.list_ids({LABEL_WORKER: settings.worker_id}) == []


async def submit(redis: Redis, language: str, code: str, **fields: Any) -> wire.Job:
    job = wire.Job(
        uuid.uuid4().hex,
        language,
        (wire.SourceFile("main.py", code),),
        enqueued_at=time.time(),
        **fields,
    )
    await Transitions(redis).submit(job)
    return job


async def record(redis: Redis, job: wire.Job) -> dict[str, str]:
    fields = await redis.hgetall(keys.execution(job.execution_id))
    return {k.decode(): v.decode() for k, v in fields.items()}


async def until(condition: Callable[[], Any], limit_s: float = 30) -> None:
    with anyio.fail_after(limit_s):
        while not await condition():  # noqa: ASYNC110 (polls another process)
            await anyio.sleep(0.05)


async def result(redis: Redis, job: wire.Job, limit_s: float = 30) -> wire.Result:
    async def ended() -> bool:
        return "result" in await record(redis, job)

    await until(ended, limit_s)
    return wire.decode_result((await record(redis, job))["result"])


async def test_two_busy_languages_both_run_first_time(redis: Redis, twin: str) -> None:
    code = "import time, sys\ntime.sleep(0.3)\nprint(sys.argv[1])"
    async with running_worker(redis, worker_slots=8, worker_languages=("python", twin)):
        jobs = [
            await submit(redis, language, code, args=(str(i),))
            for i in range(6)
            for language in ("python", twin)
        ]
        results = [await result(redis, job) for job in jobs]
        records = [await record(redis, job) for job in jobs]
    assert [(r.status, r.stdout) for r in results] == [
        (Status.COMPLETED, f"{job.args[0]}\n") for job in jobs
    ]
    assert {r["attempt"] for r in records} == {"0"}  # none was retried as a lost job


async def test_runs_stop_when_the_heartbeat_cannot_be_renewed(redis: Redis) -> None:
    code = "import time\nfor i in range(100):\n    print(i, flush=True)\n    time.sleep(0.1)"
    cold_only = PoolPolicy(min=0, max=0)
    async with running_worker(redis, heartbeat_ttl_s=2, policy=cold_only) as worker:
        job = await submit(redis, "python", code, timeout_s=20)

        async def running() -> bool:
            return (await record(redis, job))["status"] == Status.RUNNING

        async def no_container() -> bool:
            return not await worker.engine.list_ids({LABEL_WORKER: worker.settings.worker_id})

        await until(running)
        await redis.execute_command("CLIENT", "PAUSE", "4000", "WRITE")  # a partition
        paused = time.monotonic()
        await until(no_container, 4)
        assert time.monotonic() - paused < 4  # stopped while Redis was still away
        pending = await redis.xpending(keys.job_stream("python"), keys.WORKER_GROUP)
        assert pending["pending"] == 1  # left for the peers (or this worker's recovery)


async def test_a_redis_stall_is_not_charged_to_the_program(redis: Redis) -> None:
    code = "import time\nfor i in range(10):\n    print(i, flush=True)\n    time.sleep(0.15)"
    async with running_worker(redis, heartbeat_ttl_s=30):
        job = await submit(redis, "python", code, timeout_s=3)

        async def running() -> bool:
            return (await record(redis, job))["status"] == Status.RUNNING

        await until(running)
        await redis.execute_command("CLIENT", "PAUSE", "5000", "WRITE")
        done = await result(redis, job)
    assert (done.status, done.stdout) == (Status.COMPLETED, "".join(f"{i}\n" for i in range(10)))


async def test_a_flood_of_one_byte_writes_becomes_few_frames(redis: Redis) -> None:
    code = "import os\nfor _ in range(200_000):\n    os.write(1, b'x')"
    async with running_worker(redis):
        job = await submit(redis, "python", code)
        done = await result(redis, job)
        frames = await redis.llen(keys.output_log(job.execution_id))
    assert (done.status, done.stdout) == (Status.COMPLETED, "x" * 200_000)
    assert frames < 500, f"{frames} frames for 200,000 one-byte writes"


async def test_a_job_aborted_while_queued_costs_no_container(redis: Redis) -> None:
    one_warm = PoolPolicy(min=1, max=1)
    starts = [metrics.STARTS.labels("python", start) for start in ("warm", "cold")]

    def started() -> float:
        return sum(counter._value.get() for counter in starts)

    async with running_worker(redis, worker_slots=1, policy=one_warm) as worker:

        async def warm() -> bool:
            return worker.pools["python"].warm == 1

        await until(warm)
        before = started()
        busy = await submit(redis, "python", "import time\ntime.sleep(1.5)")
        queued = await submit(redis, "python", "print('never')")
        assert await Transitions(redis).abort(queued.execution_id, "python", 60) == "aborted-now"
        assert (await result(redis, busy)).status == Status.COMPLETED
        await anyio.sleep(1.5)  # time for the worker to read the aborted job, if it were there
        assert started() - before == 1
