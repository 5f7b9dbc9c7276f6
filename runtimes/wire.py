"""The wire format between the app and the workers, with its one orjson codec.

Events are exactly the WebSocket frames of the contract, so the app relays them
without re-encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from runtimes.lifecycle import Status

TIMEOUT_RANGE = (1, 30)
"""Seconds a job may ask to run for: the app refuses others, a draining worker waits this long."""


@dataclass(frozen=True, slots=True)
class SourceFile:
    name: str
    content: str


@dataclass(frozen=True, slots=True)
class Job:
    """An accepted execution request, as queued on the language's stream."""

    execution_id: str
    language: str
    files: tuple[SourceFile, ...]
    stdin: str = ""
    args: tuple[str, ...] = ()
    timeout_s: float = 10.0
    memory_mb: int = 256
    interactive: bool = False
    tty: bool = False
    enqueued_at: float = 0.0
    attempt: int = 0
    user: str = ""
    priority: Literal["standard", "premium"] = "standard"


@dataclass(frozen=True, slots=True)
class Timings:
    queue_ms: float | None = None
    start_ms: float | None = None
    compile_ms: float | None = None
    run_ms: float | None = None
    total_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """The final state of an execution: the body of `GET /api/v1/execution/{id}`."""

    execution_id: str
    language: str
    status: Status
    exit_code: int | None = None
    signal: str | None = None
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    start: Literal["warm", "cold"] | None = None
    failure_code: str | None = None
    timings: Timings = field(default_factory=Timings)


@dataclass(frozen=True, slots=True)
class StatusEvent:
    status: Status
    type: Literal["status"] = "status"


@dataclass(frozen=True, slots=True)
class OutputEvent:
    type: Literal["stdout", "stderr"]
    data: str
    seq: int


@dataclass(frozen=True, slots=True)
class ExitEvent:
    status: Status
    exit_code: int | None
    signal: str | None
    start: Literal["warm", "cold"] | None
    timings: Timings
    failure_code: str | None = None
    type: Literal["exit"] = "exit"

    @classmethod
    def of(cls, result: Result) -> ExitEvent:
        return cls(
            status=result.status,
            exit_code=result.exit_code,
            signal=result.signal,
            start=result.start,
            timings=result.timings,
            failure_code=result.failure_code,
        )


Event = StatusEvent | OutputEvent | ExitEvent


def encode(obj: Job | Result | Event) -> bytes:
    return orjson.dumps(obj)


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    """The fields `cls` has: a job from a newer app (a rolling upgrade) may carry more."""
    names = cls.__dataclass_fields__  # type: ignore[attr-defined]
    return {k: v for k, v in d.items() if k in names}


def decode_job(raw: bytes | str) -> Job:
    """The job; `ValueError` for anything that is not one (JSON of the wrong shape included)."""
    try:
        d = _known(Job, orjson.loads(raw))
        d["files"] = tuple(SourceFile(**_known(SourceFile, f)) for f in d["files"])
        d["args"] = tuple(d["args"])
        return Job(**d)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a job: {exc!r}") from None


def job_identity(raw: bytes | str) -> tuple[str, str, int] | None:
    """(execution id, language, attempt) of a job that cannot be decoded whole, if readable."""
    try:
        d = orjson.loads(raw)
        eid, language, attempt = d["execution_id"], d["language"], d.get("attempt", 0)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if isinstance(eid, str) and isinstance(language, str) and isinstance(attempt, int):
        return eid, language, attempt
    return None


def _timings(d: dict[str, Any]) -> Timings:
    return Timings(**d)


def decode_result(raw: bytes | str) -> Result:
    d = orjson.loads(raw)
    d["status"] = Status(d["status"])
    d["timings"] = _timings(d["timings"])
    return Result(**d)


_EXIT_END = b'"type":"exit"}'


def is_exit(raw: bytes) -> bool:
    """Whether an encoded event is `exit`, without decoding it: `type` is the last field of
    every event, and output data is never last."""
    return raw.endswith(_EXIT_END)


def decode_exit(raw: bytes | str) -> ExitEvent:
    event = decode_event(raw)
    if not isinstance(event, ExitEvent):
        raise ValueError(f"not an exit event: {event!r}")
    return event


def decode_event(raw: bytes | str) -> Event:
    d = orjson.loads(raw)
    kind = d["type"]
    if kind == "status":
        return StatusEvent(status=Status(d["status"]))
    if kind == "exit":
        d["status"] = Status(d["status"])
        d["timings"] = _timings(d["timings"])
        return ExitEvent(**d)
    return OutputEvent(**d)
