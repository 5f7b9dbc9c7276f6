"""Python run inside a fork of the agent's already loaded interpreter: no start-up cost."""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import sys
import threading
import traceback
import types
from typing import TextIO

from .protocol import ORDERED_FD, ORDERED_PAYLOAD, STDERR, STDOUT, frame

WORKSPACE = os.getcwd()  # the container's working directory, /workspace; tests use another


class _Ordered(io.RawIOBase):
    """A standard stream written as frames on the ordered channel.

    `fileno()` is still the real descriptor (1 or 2), so `os.write(sys.stdout.fileno())`
    and subprocesses behave as usual; they just are not ordered against the framed writes.
    """

    def __init__(self, kind: bytes, real_fd: int) -> None:
        self._kind, self._real_fd = kind, real_fd

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = bytes(data)
        for i in range(0, len(view), ORDERED_PAYLOAD):
            os.write(ORDERED_FD, frame(self._kind, view[i : i + ORDERED_PAYLOAD]))
        return len(view)

    def fileno(self) -> int:
        return self._real_fd


def _stream(fd: int, ordered: bytes | None) -> TextIO:
    """A line-buffered text stream on `fd`, framed on the ordered channel when `ordered`."""
    raw: io.RawIOBase = _Ordered(ordered, fd) if ordered else io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(
        io.BufferedWriter(raw), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def run_python(entry: str, args: list[str], ordered: bool) -> int:
    """Run `entry` as `__main__`, as `python entry args` would; its exit status."""
    sys.argv = [entry, *args]
    sys.path[0] = WORKSPACE
    # The program's standard streams live as long as its process: no context manager.
    sys.stdin = open(0, encoding="utf-8", errors="surrogateescape", closefd=False)  # noqa: SIM115
    sys.stdout = _stream(1, STDOUT if ordered else None)
    sys.stderr = _stream(2, STDERR if ordered else None)
    main = types.ModuleType("__main__")
    main.__file__ = entry
    sys.modules["__main__"] = main
    try:
        with open(entry, "rb") as source:
            code = compile(source.read(), entry, "exec", dont_inherit=True)
        exec(code, main.__dict__)
        status = 0
    except SystemExit as exc:
        status = _exit_code(exc)
    except BaseException as exc:  # the program's own error, reported as python would
        tb = exc.__traceback__
        while tb is not None and not tb.tb_frame.f_code.co_filename.startswith(WORKSPACE):
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb)
        status = 1
    _finish_like_python()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    return status


def _finish_like_python() -> None:
    """What the interpreter does at exit before it stops: wait for the program's non-daemon
    threads, then run its atexit handlers (the fork ends with os._exit, which does neither)."""
    with contextlib.suppress(Exception):
        threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
