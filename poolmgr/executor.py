"""Runs one job in one container, from claim to terminal status, with limits enforced outside."""

from __future__ import annotations

import codecs
import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import anyio
import orjson
from redis.asyncio import Redis

from poolmgr import metrics
from poolmgr.container import AgentGone, Container
from poolmgr.control import relay_control
from poolmgr.engine import Engine
from poolmgr.engine_errors import EngineError
from poolmgr.pool import Pool, PoolUnavailable
from poolmgr.publisher import ExecutionPublisher, Stream, Superseded
from poolmgr.sandbox import DEFAULT_MEMORY_MB
from runtimes import agent, wire
from runtimes.lifecycle import Status
from runtimes.registry import Runtime

log = logging.getLogger(__name__)

CHILD_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/workspace",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "TMPDIR": "/tmp",
}
ENCODED_FACTOR = 2
_STREAMS: dict[bytes, Stream] = {agent.STDOUT: "stdout", agent.STDERR: "stderr"}


@dataclass
class Output:
    """The program's output so far, cut at the limit, decoded without splitting characters.

    The limit holds twice: on the raw bytes the program wrote, and on their size once
    encoded as JSON frames (at most ENCODED_FACTOR times the raw limit), because control
    characters and invalid UTF-8 take up to six times their raw size in Redis and on the wire.
    """

    limit: int
    used: int = 0
    encoded: int = 0
    truncated: bool = False
    text: dict[str, list[str]] = field(default_factory=lambda: {"stdout": [], "stderr": []})
    _decoders: dict[str, codecs.IncrementalDecoder] = field(
        default_factory=lambda: {
            name: codecs.getincrementaldecoder("utf-8")(errors="replace")
            for name in ("stdout", "stderr")
        }
    )

    def add(self, stream: str, data: bytes) -> str:
        room = self.limit - self.used
        if len(data) > room:
            data, self.truncated = data[:room], True
        self.used += len(data)
        return self._keep(stream, self._decoders[stream].decode(data))

    def flush(self, stream: str) -> str:
        return self._keep(stream, self._decoders[stream].decode(b"", final=True))

    def _keep(self, stream: str, text: str) -> str:
        room = self.limit * ENCODED_FACTOR - self.encoded
        size = _encoded_size(text)
        if size > room:
            text, self.truncated = _cut_to(text, room), True
            size = _encoded_size(text)
        self.encoded += size
        if text:
            self.text[stream].append(text)
        return text

    def joined(self, stream: str) -> str:
        return "".join(self.text[stream])


def _encoded_size(text: str) -> int:
    return len(orjson.dumps(text)) - 2


def _cut_to(text: str, size: int) -> str:
    """The longest prefix of `text` whose encoded size is at most `size`."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _encoded_size(text[:mid]) <= size:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


@dataclass
class RunOutcome:
    status: Status
    exit_code: int | None = None
    signal: str | None = None
    failure_code: str | None = None


def _exited(payload: bytes) -> RunOutcome:
    """The outcome the agent's EXIT frame describes; an OOM kill anywhere is a memory kill."""
    try:
        info = orjson.loads(payload)
        code, sig, kills = info["exit_code"], info["signal"], info["oom_kills"]
        valid = (code is None or isinstance(code, int)) and (sig is None or isinstance(sig, str))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        valid = False
    if not valid or not isinstance(kills, int):
        return RunOutcome(Status.FAILED, failure_code="agent_lost")
    if kills > 0:
        return RunOutcome(Status.MEMORY_EXCEEDED, code, sig)
    return RunOutcome(Status.COMPLETED, code, sig)


def agent_job(job: wire.Job, runtime: Runtime) -> dict[str, object]:
    """What the in-container agent needs: files, entry point, argv, stdin, environment."""
    return {
        "files": [{"name": f.name, "content": f.content} for f in job.files],
        "entry": job.files[0].name,
        "mode": runtime.mode,
        "args": list(job.args),
        "stdin": job.stdin,
        "interactive": job.interactive,
        "env": CHILD_ENV,
    }


class TransientFailure(RuntimeError):
    """No container could be had for the job: the infrastructure, not the program, failed."""


class Executor:
    """Executes jobs of one worker: claim (or cold-start), run, stream, destroy."""

    def __init__(
        self, engine: Engine, pools: dict[str, Pool], redis: Redis, max_output_bytes: int
    ) -> None:
        self._engine = engine
        self._pools = pools
        self._redis = redis
        self._max_output = max_output_bytes

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
            outcome = await self._run(container, job, publisher, output)
            if outcome.failure_code == "agent_lost":
                outcome = await self._explain_loss(container, outcome)
            result = self._result(job, outcome, output, start, queue_s, t0, t_run, time.monotonic())
            with anyio.CancelScope(shield=True):
                await publisher.finish(result)
            return result
        finally:
            pool.discard(container)

    async def _run(
        self, container: Container, job: wire.Job, publisher: ExecutionPublisher, output: Output
    ) -> RunOutcome:
        """Relay output until EXIT, the deadline, the output cap, a kill, or being superseded.

        The deadline covers only the program: output goes to the publisher's buffer, and
        what is left is written after the run.
        """
        outcome = RunOutcome(Status.FAILED, failure_code="agent_lost")
        superseded = False
        with anyio.move_on_after(job.timeout_s) as deadline:
            async with anyio.create_task_group() as tg:
                run_scope = tg.cancel_scope

                def kill() -> None:
                    nonlocal outcome
                    outcome = RunOutcome(Status.ABORTED, signal="SIGKILL")
                    run_scope.cancel()

                def give_up() -> None:
                    nonlocal superseded
                    superseded = True
                    run_scope.cancel()

                tg.start_soon(relay_control, self._redis, job.execution_id, container, kill)
                tg.start_soon(publisher.pump, give_up)
                outcome = await self._relay(container, publisher, output) or outcome
                run_scope.cancel()
        if superseded:
            raise Superseded(f"execution {job.execution_id} was taken over")
        if deadline.cancelled_caught:
            outcome = RunOutcome(Status.TIMED_OUT, signal="SIGKILL")
        for name in _STREAMS.values():
            rest = output.flush(name)
            if rest:
                publisher.output(name, rest)
        await publisher.flush()
        return outcome

    async def _relay(
        self, container: Container, publisher: ExecutionPublisher, output: Output
    ) -> RunOutcome | None:
        """The agent's frames to the publisher; the outcome, or None if the output ended."""
        async for kind, payload in container.frames():
            stream = _STREAMS.get(kind)
            if stream is not None:
                text = output.add(stream, payload)
                if text:
                    publisher.output(stream, text)
                if output.truncated:
                    return RunOutcome(Status.OUTPUT_EXCEEDED, signal="SIGKILL")
            elif kind == agent.EXIT:
                return _exited(payload)
        return None

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
        t_end: float,
    ) -> wire.Result:
        timings = wire.Timings(
            queue_ms=round(queue_s * 1e3, 2),
            start_ms=round((t_run - t0) * 1e3, 2),
            run_ms=round((t_end - t_run) * 1e3, 2),
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
