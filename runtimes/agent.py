"""The in-container agent: waits warm on stdin for one job, runs it, streams its output.

It runs as PID 1 of a one-shot container, so it needs only the standard library and
is copied into each runtime image. The worker imports the framing from here too, so
the protocol is written once.

Protocol: frames of `kind (1 byte) | length (u32, big endian) | payload` both ways.
Worker -> agent: JOB (JSON), STDIN (bytes), STDIN_EOF. Agent -> worker: READY once
the interpreter is loaded, STDOUT/STDERR chunks in the order the program wrote
them, then EXIT (JSON `{"exit_code", "signal"}`): an explicit end, never inferred
from the stream closing.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import selectors
import signal
import struct
import sys
import traceback
import types
from collections.abc import Iterator
from typing import Any

HEADER = struct.Struct(">cI")
JOB, STDIN, STDIN_EOF = b"J", b"I", b"Z"
READY, STDOUT, STDERR, EXIT = b"R", b"1", b"2", b"X"
WORKSPACE = "/workspace"
CHUNK = 65536
MAX_AGENT_FRAME = CHUNK + 4096  # the largest frame the agent itself ever writes
# Input buffered for a program that does not read it yet. The worker caps stdin per execution
# (1 MiB by default); beyond this the agent drops input rather than grow until the OOM killer.
MAX_PENDING_STDIN = 4 * 1024 * 1024
PR_SET_DUMPABLE = 4
# Imported before the container reports ready, so a program's first imports cost nothing.
PRELOAD = (
    "collections", "datetime", "functools", "heapq", "itertools", "math", "random", "re",
    "string", "typing", "dataclasses", "bisect", "decimal", "fractions", "statistics",
)  # fmt: skip


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    """One protocol frame."""
    return HEADER.pack(kind, len(payload)) + payload


class FrameTooLarge(ValueError):
    """A frame longer than the reader accepts: the other side is broken or hostile."""


class FrameReader:
    """Splits a byte stream into frames, whatever the chunking of the transport.

    `max_frame` bounds what the worker buffers for a frame the program might have forged.
    """

    def __init__(self, max_frame: int | None = None) -> None:
        self._buf = bytearray()
        self._max = max_frame

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bytes]]:
        self._buf += data
        while len(self._buf) >= HEADER.size:
            kind, size = HEADER.unpack_from(self._buf)
            if self._max is not None and size > self._max:
                raise FrameTooLarge(f"a {size}-byte frame exceeds {self._max}")
            end = HEADER.size + size
            if len(self._buf) < end:
                return
            payload = bytes(self._buf[HEADER.size : end])
            del self._buf[:end]
            yield kind, payload


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_files(files: list[dict[str, str]]) -> None:
    for f in files:
        path = os.path.join(WORKSPACE, f["name"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as out:
            out.write(f["content"])


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _run_python(entry: str, args: list[str]) -> int:
    """Run `entry` as `__main__` in this (forked, already warm) interpreter, as `python entry`."""
    sys.argv = [entry, *args]
    sys.path[0] = WORKSPACE
    # The program's standard streams live as long as its process: no context manager.
    sys.stdin = open(0, encoding="utf-8", errors="surrogateescape", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", buffering=1)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1)  # noqa: SIM115
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
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    return status


def _child(job: dict[str, Any], stdin_r: int, out_w: int, err_w: int) -> None:
    """Become the program: pipes on 0/1/2, nothing else open, default signals."""
    os.setsid()
    _set_dumpable(1)  # the program may inspect itself (/proc/self) as usual
    for target, fd in ((0, stdin_r), (1, out_w), (2, err_w)):
        os.dup2(fd, target)
    os.closerange(3, 65536)
    _default_signals()
    os.chdir(WORKSPACE)
    os.environ.clear()
    os.environ.update(job.get("env", {}))
    code = 1
    try:
        code = _run_python(os.path.join(WORKSPACE, job["entry"]), job.get("args", []))
    except BaseException:  # the agent's own failure: say so on the program's stderr
        traceback.print_exc()
    finally:
        os._exit(code)


class Session:
    """The parent side of one run: relays pipes to frames and frames to stdin."""

    def __init__(self, control: int, out: int) -> None:
        self.control, self.out = control, out
        self.reader = FrameReader()
        self.sel = selectors.DefaultSelector()
        self.pending_stdin = bytearray()
        self.stdin_w: int | None = None
        self.close_stdin = False
        self.status: int | None = None

    def send(self, kind: bytes, payload: bytes = b"") -> None:
        _write_all(self.out, frame(kind, payload))

    def next_job(self) -> dict[str, Any]:
        while True:
            data = os.read(self.control, CHUNK)
            if not data:
                sys.exit(0)  # the worker went away before giving us a job
            for kind, payload in self.reader.feed(data):
                if kind == JOB:
                    job: dict[str, Any] = json.loads(payload)
                    return job

    def run(self, job: dict[str, Any]) -> None:
        _write_files(job["files"])
        stdin_r, self.stdin_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        exited = _watch_children()  # before the fork: a quick child must not be missed
        pid = os.fork()
        if pid == 0:
            _child(job, stdin_r, out_w, err_w)
        for fd in (stdin_r, out_w, err_w):
            os.close(fd)
        os.set_blocking(self.stdin_w, False)
        self._queue_stdin(job.get("stdin", "").encode())
        self.close_stdin = not job.get("interactive", False)
        self.sel.register(out_r, selectors.EVENT_READ, STDOUT)
        self.sel.register(err_r, selectors.EVENT_READ, STDERR)
        self.sel.register(self.control, selectors.EVENT_READ, JOB)
        self.sel.register(exited, selectors.EVENT_READ, EXIT)
        self._on_control(b"")  # stdin that arrived in the same read as the job
        self._loop(pid)

    def _loop(self, pid: int) -> None:
        open_pipes = 2
        while open_pipes or self.status is None:
            for key, _ in self.sel.select():
                fd, what = key.fd, key.data
                if what in (STDOUT, STDERR):
                    data = os.read(fd, CHUNK)
                    if data:
                        self.send(what, data)
                    else:
                        self.sel.unregister(fd)
                        os.close(fd)
                        open_pipes -= 1
                elif what == EXIT:
                    with contextlib.suppress(BlockingIOError):
                        os.read(fd, CHUNK)  # drain the wake-ups
                    status = _reap(pid)
                    if status is not None:
                        self.sel.unregister(fd)
                        self.status = status
                        self._end_stdin()
                        _kill_leftovers(pid)
                elif what == JOB:
                    data = os.read(fd, CHUNK)
                    if data:
                        self._on_control(data)
                    else:
                        self.sel.unregister(fd)
                else:
                    self._flush_stdin()
        assert self.status is not None
        self.send(EXIT, json.dumps(_describe(self.status)).encode())

    def _on_control(self, data: bytes) -> None:
        """Frames after the job; `data` may be empty to take those read along with the job."""
        for kind, payload in self.reader.feed(data):
            if kind == STDIN:
                self._queue_stdin(payload)
            elif kind == STDIN_EOF:
                self.close_stdin = True
        self._flush_stdin()

    def _queue_stdin(self, data: bytes) -> None:
        """Buffer input for the program, within MAX_PENDING_STDIN.

        Input after the end of stdin (STDIN_EOF, the program gone or its stdin closed) has
        no reader and is dropped: buffering it would grow the agent until the OOM killer.
        """
        if self.stdin_w is None or self.close_stdin:
            return
        self.pending_stdin += data[: MAX_PENDING_STDIN - len(self.pending_stdin)]

    def _flush_stdin(self) -> None:
        if self.stdin_w is None:
            return
        try:
            while self.pending_stdin:
                del self.pending_stdin[: os.write(self.stdin_w, self.pending_stdin)]
        except BlockingIOError:
            pass
        except BrokenPipeError:  # no reader left: the program closed its stdin
            self.pending_stdin.clear()
            self.close_stdin = True
        self._watch_stdin(bool(self.pending_stdin))
        if not self.pending_stdin and self.close_stdin:
            self._end_stdin()

    def _watch_stdin(self, want: bool) -> None:
        assert self.stdin_w is not None
        watched = self.stdin_w in self.sel.get_map()
        if want and not watched:
            self.sel.register(self.stdin_w, selectors.EVENT_WRITE, STDIN)
        elif watched and not want:
            self.sel.unregister(self.stdin_w)

    def _end_stdin(self) -> None:
        if self.stdin_w is not None:
            self._watch_stdin(False)
            os.close(self.stdin_w)
            self.stdin_w = None


def _watch_children() -> int:
    """A file descriptor that turns readable when a child exits (SIGCHLD's wake-up fd).

    A signal wake-up works under every kernel we run on, gVisor included, where
    `pidfd_open` does not.
    """
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    return r


def _ignore_signals() -> None:
    """Ignore every signal but SIGCHLD, the agent's wake-up (its handler is set per run).

    PID 1 of a pid namespace receives, from inside it, only the signals it has a handler
    for. Python installs one for SIGINT, so `os.kill(1, SIGINT)` from the program (same
    uid) would end the agent and forge an infrastructure failure. Ignoring SIGPIPE also
    turns a vanished reader into BrokenPipeError. SIGKILL and SIGSTOP cannot be caught:
    Linux drops them when they come from inside the namespace (gVisor does not).
    """
    for sig in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD}:
        signal.signal(sig, signal.SIG_IGN)


def _default_signals() -> None:
    """Undo `_ignore_signals` and `_watch_children` for the program: an ignored signal
    would survive its exec. SIGINT raises KeyboardInterrupt, as python sets it."""
    signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}:
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _reap(pid: int) -> int | None:
    """Reap every exited child (as PID 1, orphans too); the program's wait status if it is done."""
    found = None
    while True:
        try:
            done, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if done == 0:
            return found
        if done == pid:
            found = status


def _kill_leftovers(pid: int) -> None:
    """Kill whatever the program left running, which closes the pipes it still holds.

    As PID 1 of a one-shot container that is every other process; elsewhere (tests on
    the host) only the program's own process group.
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGKILL) if os.getpid() == 1 else os.killpg(pid, signal.SIGKILL)


def oom_kills() -> int:
    """How many processes the kernel's OOM killer has killed in this container's cgroup."""
    for path in ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"):
        with contextlib.suppress(OSError, ValueError), open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == "oom_kill":
                    return int(value)
    return 0


def _describe(status: int) -> dict[str, Any]:
    """The EXIT payload; `oom_kills` lets the worker tell a memory kill from any SIGKILL."""
    kills = oom_kills()
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        return {"exit_code": None, "signal": name, "oom_kills": kills}
    return {"exit_code": os.WEXITSTATUS(status), "signal": None, "oom_kills": kills}


def _set_dumpable(value: int) -> None:
    """PR_SET_DUMPABLE: at 0, /proc/1 is root's, so the program (same uid) cannot open the
    agent's file descriptors and write forged frames into the worker's stream."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, value, 0, 0, 0)


def main() -> None:
    _set_dumpable(0)
    _ignore_signals()
    for name in PRELOAD:
        importlib.import_module(name)
    session = Session(control=0, out=1)
    session.send(READY)
    session.run(session.next_job())


if __name__ == "__main__":
    main()
