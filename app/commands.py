"""Client frames on the WebSockets, parsed and checked: run, stdin, kill, ping."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson


@dataclass(frozen=True)
class Command:
    """A parsed client frame: what to do, or why it was refused (`problem`)."""

    kind: Literal["run", "stdin", "kill", "ping", "invalid"]
    message: bytes = b""  # the stdin control message for the worker
    problem: str = ""
    size: int = 0  # bytes of stdin data
    eof: bool = False
    body: dict[str, Any] = field(default_factory=dict)  # a run's execute body


def parse_command(raw: str, max_stdin_bytes: int) -> Command:
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Command("invalid", problem="frames must be JSON objects")
    kind = message.get("type") if isinstance(message, dict) else None
    if kind in ("kill", "ping"):
        return Command(kind)
    if kind == "run":
        return Command("run", body={k: v for k, v in message.items() if k != "type"})
    if kind != "stdin":
        return Command(
            "invalid",
            problem="expected a frame of type 'run', 'stdin', 'kill' or 'ping'",
        )
    data, eof = message.get("data"), message.get("eof", False)
    if (data is not None and not isinstance(data, str)) or not isinstance(eof, bool):
        return Command("invalid", problem="stdin takes a string 'data' and/or 'eof': true")
    if not data and not eof:
        return Command("invalid", problem="a stdin frame carries non-empty 'data' or 'eof': true")
    size = len(data.encode()) if data is not None else 0
    if size > max_stdin_bytes:
        return Command("invalid", problem=f"a stdin frame is limited to {max_stdin_bytes} bytes")
    message = orjson.dumps({"type": "stdin", "data": data, "eof": eof})
    return Command("stdin", message, size=size, eof=eof)
