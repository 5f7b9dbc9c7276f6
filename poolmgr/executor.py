"""Runs one job in one container, from claim to terminal status, with limits enforced outside."""

from __future__ import annotations

import logging
import time
from typing import Literal

import anyio
from redis.asyncio import Redis

from poolmgr import metrics
from poolmgr.container import AgentGone, Container
from poolmgr.engine import Engine
from poolmgr.engine_errors import EngineError
from poolmgr.output import Output
from poolmgr.pool import Pool, PoolUnavailable
from poolmgr.publisher import ExecutionPublisher
from poolmgr.run import Phases, Run, RunOutcome
from poolmgr.sandbox import DEFAULT_MEMORY_MB
from runtimes import wire
from runtimes.lifecycle import Status
from runtimes.runtime import Runtime

log = logging.getLogger(__name__)

TERMINAL_SIZE = {"rows": 24, "cols": 80}


def agent_job(job: wire.Job, runtime: Runtime) -> dict[str, object]:
    """What the in-container agent needs: files, commands, argv, stdin, terminal."""
    entry = job.files[0].name
    return {
        "files": [{"name": f.name, "content": f.content} for f in job.files],
        "entry": entry,
        "args": list(job.args),
        "stdin": job.stdin,
        "interactive": job.interactive,
        "tty": TERMINAL_SIZE if job.tty else None,
        "compile": runtime.compile_command(entry) or None,
        "run": runtime.run_command(entry) or None,
    }


class TransientFailure(RuntimeError):
    """No container could be had for the job: the infrastructure, not the program, failed."""


class Executor:
    """Executes jobs of one worker: claim (or cold-start), run, stream, destroy."""

    def __init__(
        self,
        engine: Engine,
        pools: dict[str, Pool],
        redis: Redis,
        max_output_bytes: int,
        compile_timeout_s: float,
    ) -> None:
        self._engine = engine
        self._pools = pools
        self._redis = redis
        self._max_output = max_output_bytes
        self._compile_timeout = compile_timeout_s

    async def execute(
        self, job: wire.Job, publisher: ExecutionPublisher, read_at: float
    ) -> wire.Result | None:
        """Run `job` and record its terminal result; `read_at` is when it was read off the queue.

        None when the execution had already ended elsewhere (aborted while queued). Raises
        `TransientFailure` when no container could be had, so the job can be retried. The
        result is published before the container is destroyed: removing a container is
        CPU-heavy work that would otherwise delay the user's exit frame.
        """
        queue_s = max(0.0, time.time() - job.enqueued_at)
        metrics.QUEUE_WAIT.labels(job.language).observe(queue_s)
        pool = self._pools[job.language]
        t0 = time.monotonic()
        start: Literal["warm", "cold"] = "warm"
        container = pool.claim()
        if container is None:
            start = "cold"
            if not await publisher.set_status(Status.PREPARING):
                return None
            try:
                container = await pool.cold_start()
            except (EngineError, AgentGone, TimeoutError, PoolUnavailable) as exc:
                raise TransientFailure(f"no {job.language} container: {exc}") from exc
        pool.record_start(cold=start == "cold")
        try:
            try:
                if job.memory_mb != DEFAULT_MEMORY_MB:
                    await self._engine.set_memory(container.id, job.memory_mb)
                await container.send_job(agent_job(job, pool.runtime))
            except (
                EngineError,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                OSError,
            ) as exc:
                raise TransientFailure(f"container died before the job was written: {exc}") from exc
            t_run = time.monotonic()
            metrics.CLAIM.labels(job.language, start).observe(t_run - read_at)
            # On the warm path `preparing` took no time: both go out in one round trip,
            # after the job, so the program starts without waiting for Redis. If the
            # execution was aborted meanwhile, the container is destroyed unheard.
            if not await publisher.set_status(Status.PREPARING, Status.RUNNING):
                return None
            output = Output(self._max_output)
            compile_limit = self._compile_timeout if pool.runtime.compiled else None
            run = Run(self._redis, container, job, publisher, output, compile_limit)
            outcome = await run()
            if outcome.failure_code == "agent_lost":
                outcome = await self._explain_loss(container, outcome)
            result = self._result(job, outcome, output, start, queue_s, t0, t_run, run.phases)
            with anyio.CancelScope(shield=True):
                await publisher.finish(result)
            pool.service_s.record(time.monotonic() - t0)
            return result
        finally:
            pool.discard(container)

    async def _explain_loss(self, container: Container, outcome: RunOutcome) -> RunOutcome:
        """A vanished agent (PID 1) was a memory kill when the engine saw an OOM."""
        try:
            state = (await self._engine.inspect(container.id)).get("State", {})
        except Exception as exc:  # the container may already be gone; keep what we know
            log.warning("cannot inspect %s: %s", container.id[:12], exc)
            return outcome
        if state.get("OOMKilled"):
            return RunOutcome(Status.MEMORY_EXCEEDED, signal="SIGKILL")
        return outcome

    def _result(
        self,
        job: wire.Job,
        outcome: RunOutcome,
        output: Output,
        start: Literal["warm", "cold"] | None,
        queue_s: float,
        t0: float,
        t_run: float,
        phases: Phases,
    ) -> wire.Result:
        t_end = time.monotonic()
        timings = wire.Timings(
            queue_ms=round(queue_s * 1e3, 2),
            start_ms=round((t_run - t0) * 1e3, 2),
            compile_ms=phases.compile_ms,
            run_ms=round((t_end - phases.started) * 1e3, 2),
            total_ms=round((queue_s + t_end - t0) * 1e3, 2),
        )
        return wire.Result(
            execution_id=job.execution_id,
            language=job.language,
            status=outcome.status,
            exit_code=outcome.exit_code,
            signal=outcome.signal,
            stdout=output.joined("stdout"),
            stderr=output.joined("stderr"),
            truncated=output.truncated,
            start=start,
            failure_code=outcome.failure_code,
            timings=timings,
        )
