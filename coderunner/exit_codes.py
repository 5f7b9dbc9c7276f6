"""`coderunner run`'s exit status: the program's own, or one code per other way a run ends.

The codes follow sysexits(3) for the client's own failures, timeout(1) for a timeout and the
shell's 128+N for what a signal ends. A program that exits with one of these codes itself
is indistinguishable from the event, as with timeout(1); the one-line message on stderr
tells them apart.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

USAGE = 64  # EX_USAGE: a bad command line, or a request the server refused as invalid
COMPILE_ERROR = 65  # EX_DATAERR: the compiler refused the program
NO_INPUT = 66  # EX_NOINPUT: a FILE or the --stdin file cannot be read
UNAVAILABLE = 69  # EX_UNAVAILABLE: the server is unreachable, or went away mid-run
FAILED = 70  # EX_SOFTWARE: the service failed (status `failed`, an internal error)
TRY_LATER = 75  # EX_TEMPFAIL: rate limited, too many running, queue full, shutting down
UNAUTHORIZED = 77  # EX_NOPERM: no API key, or a wrong one
TIMED_OUT = 124  # as timeout(1)
ABORTED = 130  # 128 + SIGINT: Ctrl-C (the kill frame), or a second Ctrl-C
MEMORY_EXCEEDED = 137  # 128 + SIGKILL, as after the kernel's OOM killer
OUTPUT_EXCEEDED = 141  # 128 + SIGPIPE: the output stopped being taken

TABLE = """\
exit status:
  N      the program exited with N
  128+N  the program was ended by signal N (139: SIGSEGV)
  64     usage error, or the server refused the request as invalid
  65     compile error (the compiler's messages are on stderr)
  66     a FILE or the --stdin file cannot be read
  69     the server is unreachable, or the connection was lost mid-run
  70     the service failed to run the program (failure_code in the message)
  75     try again later: rate limited, too many running, queue full, shutting down
  77     unauthorized: no API key, or a wrong one
  124    timed out
  130    aborted: Ctrl-C (the run was killed)
  137    memory limit exceeded
  141    output limit exceeded (the output was truncated)
A program that exits with one of these codes itself looks the same to a script; the
"coderunner:" line on stderr tells them apart.
"""

_TRY_LATER_ERRORS = {"rate_limited", "too_many_running", "queue_full", "queue_unavailable"}
_REFUSED_ERRORS = {
    "invalid_field", "code_too_large", "too_many_files", "stdin_too_large", "request_too_large",
}  # fmt: skip
_CLOSE_CODES = {
    4401: (UNAUTHORIZED, "unauthorized"),
    4429: (TRY_LATER, "rate limited"),
    1001: (TRY_LATER, "the server is shutting down"),
    1008: (TRY_LATER, "too many sockets"),
    1013: (TRY_LATER, "the server is unavailable, try again later"),
}


@dataclass(frozen=True)
class Outcome:
    """How `coderunner run` exits: a status, and the line it prints on stderr first, if any."""

    code: int
    message: str | None = None


def from_exit(frame: Mapping[str, Any], timeout_s: float, memory_mb: int) -> Outcome:
    """The outcome of an `exit` frame; `timeout_s` and `memory_mb` are the run's limits."""
    status = frame.get("status")
    if status == "completed":
        return _completed(frame.get("exit_code"), frame.get("signal"))
    if status == "compile_error":
        return Outcome(COMPILE_ERROR, "compile error")
    if status == "timed_out":
        return Outcome(TIMED_OUT, f"timed out after {timeout_s:g} s")
    if status == "memory_exceeded":
        return Outcome(MEMORY_EXCEEDED, f"memory limit exceeded ({memory_mb} MB)")
    if status == "output_exceeded":
        return Outcome(OUTPUT_EXCEEDED, "output limit exceeded: the output was truncated")
    if status == "aborted":
        return Outcome(ABORTED, "aborted")
    if status == "failed":
        return Outcome(
            FAILED, f"the service failed to run the program ({frame.get('failure_code')})"
        )
    return Outcome(FAILED, f"unknown status {status!r}")


def _completed(exit_code: object, signal_name: object) -> Outcome:
    if isinstance(signal_name, str):
        number = signal.Signals.__members__.get(signal_name)
        return Outcome(128 + (number or 0), f"killed by {signal_name}")
    if isinstance(exit_code, int):
        return Outcome(exit_code & 0xFF)
    return Outcome(FAILED, "the program ended without an exit code")


def from_error(frame: Mapping[str, Any]) -> Outcome:
    """The outcome of an `error` frame that ends the run."""
    code, message = frame.get("code"), frame.get("message")
    line = f"{code}: {message}"
    retry = frame.get("retry_after_s")
    if isinstance(retry, int | float):
        line += f"; retry after {retry:g} s"
    if code == "unauthorized":
        return Outcome(UNAUTHORIZED, line)
    if code in _TRY_LATER_ERRORS:
        return Outcome(TRY_LATER, line)
    if code in _REFUSED_ERRORS:
        return Outcome(USAGE, line)
    return Outcome(FAILED, line)


def from_close(code: int | None, reason: str) -> Outcome:
    """The outcome of a socket the server closed before the run's exit frame."""
    status, what = _CLOSE_CODES.get(code or 0, (UNAVAILABLE, "the connection was lost"))
    if code is None:
        return Outcome(status, what)
    return Outcome(status, f"{what} (close code {code}{': ' + reason if reason else ''})")


def from_http_status(status: int) -> Outcome:
    """The outcome of a refused WebSocket handshake."""
    if status in (401, 403):
        return Outcome(UNAUTHORIZED, f"unauthorized (HTTP {status})")
    if status in (429, 503):
        return Outcome(TRY_LATER, f"the server refused the connection (HTTP {status})")
    return Outcome(UNAVAILABLE, f"the server refused the connection (HTTP {status})")
