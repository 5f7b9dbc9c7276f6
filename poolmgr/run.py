"""One run of a container's agent: its frames relayed, its phases timed, its limits enforced.

A run has up to two phases. A compiled language's container first compiles, under the
worker's compile limit (`CODERUNNER_COMPILE_TIMEOUT_S`); the agent's COMPILED frame ends
that phase, and the program's own `timeout_s` starts only then. Output goes to the
publisher's buffer, so neither limit ever counts time spent waiting for Redis.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import anyio
import orjson
from redis.asyncio import Redis

from poolmgr.container import Container
from poolmgr.control import relay_control
from poolmgr.output import Output
from poolmgr.publisher import ExecutionPublisher, Stream, Superseded
from runtimes import wire
from runtimes.agent.protocol import COMPILED, EXIT, STDERR, STDOUT
from runtimes.lifecycle import Status

_STREAMS: dict[bytes, Stream] = {STDOUT: "stdout", STDERR: "stderr"}


@dataclass
class RunOutcome:
    status: Status
    exit_code: int | None = None
    signal: str | None = None
    failure_code: str | None = None


@dataclass
class Phases:
    """When the program started (after its compile step, if any) and what compiling took."""

    started: float
    compile_ms: float | None = None
    compiling: bool = False
    compile_failed: bool = False


def _exited(payload: bytes, compile_failed: bool) -> RunOutcome:
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
    return RunOutcome(Status.COMPILE_ERROR if compile_failed else Status.COMPLETED, code, sig)


class Run:
    """Relays one container's frames until EXIT, a limit, the output cap, a kill, or until
    this attempt is superseded (then `Superseded` is raised)."""

    def __init__(
        self,
        redis: Redis,
        container: Container,
        job: wire.Job,
        publisher: ExecutionPublisher,
        output: Output,
        compile_limit_s: float | None,
    ) -> None:
        self._redis = redis
        self._container = container
        self._job = job
        self._publisher = publisher
        self._output = output
        self._compile_limit = compile_limit_s
        self.phases = Phases(time.monotonic(), compiling=compile_limit_s is not None)

    async def __call__(self) -> RunOutcome:
        job, publisher = self._job, self._publisher
        outcome = RunOutcome(Status.FAILED, failure_code="agent_lost")
        superseded = False
        with anyio.move_on_after(self._compile_limit or job.timeout_s) as deadline:
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

                tg.start_soon(relay_control, self._redis, job.execution_id, self._container, kill)
                tg.start_soon(publisher.pump, give_up)
                outcome = await self._relay(deadline) or outcome
                run_scope.cancel()
        if superseded:
            raise Superseded(f"execution {job.execution_id} was taken over")
        if deadline.cancelled_caught:
            outcome = self._out_of_time()
        for name in _STREAMS.values():
            rest = self._output.flush(name)
            if rest:
                publisher.output(name, rest)
        await publisher.flush()
        return outcome

    def _out_of_time(self) -> RunOutcome:
        if not self.phases.compiling:
            return RunOutcome(Status.TIMED_OUT, signal="SIGKILL")
        self._publisher.output(
            "stderr", f"\ncompilation took longer than {self._compile_limit:g} s\n"
        )
        return RunOutcome(Status.COMPILE_ERROR, signal="SIGKILL")

    async def _relay(self, deadline: anyio.CancelScope) -> RunOutcome | None:
        """The agent's frames to the publisher; the outcome, or None if the output ended."""
        async for kind, payload in self._container.frames():
            stream = _STREAMS.get(kind)
            if stream is not None:
                text = self._output.add(stream, payload)
                if text:
                    self._publisher.output(stream, text)
                if self._output.truncated:
                    return RunOutcome(Status.OUTPUT_EXCEEDED, signal="SIGKILL")
            elif kind == COMPILED and self.phases.compiling:  # one report, then the program's
                self._compiled(payload, deadline)
            elif kind == EXIT:
                return _exited(payload, self.phases.compile_failed)
        return None

    def _compiled(self, payload: bytes, deadline: anyio.CancelScope) -> None:
        """The compile step ended: the program's own time limit starts now."""
        try:
            report = orjson.loads(payload)
            ok, ms = bool(report["ok"]), float(report["ms"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            ok, ms = False, 0.0
        self.phases = Phases(time.monotonic(), round(ms, 2), False, not ok)
        deadline.deadline = anyio.current_time() + self._job.timeout_s
