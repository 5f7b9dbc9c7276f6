"""One job in the agent: files, an optional compile step, the program, its output, its end."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

from . import start
from .protocol import (
    CHUNK,
    COMPILED,
    EXIT,
    JOB,
    ORDERED_PAYLOAD,
    STDERR,
    STDIN,
    STDIN_EOF,
    STDOUT,
    FrameReader,
    FrameTooLarge,
    frame,
)
from .pyrun import WORKSPACE
from .stdin import Stdin

_EXITED, _WORKER, _LAUNCHER, _STDIN = b"x", b"w", b"l", b"i"
REPORT_MAX = 64  # a launcher's report is one short line
READY_TIMEOUT_S = 60


@dataclass
class Launcher:
    """A runtime's launcher process, started while the container warms."""

    pid: int
    stdio: start.Stdio
    control: socket.socket


class Session:
    """The agent's side of one container's single job."""

    def __init__(self, control: int, out: int) -> None:
        self.control, self.out = control, out
        self.reader = FrameReader()
        self.sel = selectors.DefaultSelector()
        self.stdin = Stdin()
        self._stdin_watched: int | None = None
        self.exited = _watch_children()  # before any fork: a quick child must not be missed
        self.sel.register(self.exited, selectors.EVENT_READ, _EXITED)

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

    def start_launcher(self, argv: list[str], stdio: start.Stdio) -> Launcher:
        """Start a launcher and wait until it says it is ready (its runtime is loaded)."""
        ours, theirs = start.launcher_control()
        pid = start.spawn_launcher(argv, stdio, theirs)
        theirs.close()
        stdio.close_child_ends()
        ours.settimeout(READY_TIMEOUT_S)
        if _read_line(ours) != "ready":
            raise RuntimeError(f"launcher {argv[0]} did not start")
        return Launcher(pid, stdio, ours)

    def run(self, job: dict[str, Any], mode: str, warm: Launcher | None) -> None:
        _write_files(job["files"])
        self.stdin.add(job.get("stdin", "").encode())
        if not job.get("interactive", False):
            self.stdin.end()
        self.sel.register(self.control, selectors.EVENT_READ, _WORKER)
        self._on_worker(b"")  # stdin that arrived in the same read as the job
        if job.get("compile"):
            status = self._compile(job["compile"])
            if status != 0:
                self.send(EXIT, json.dumps(_describe(status)).encode())
                return
        pid, stdio, launcher = self._start(job, mode, warm)
        self.stdin.attach(stdio.stdin, stdio.tty)
        status = self._relay(pid, stdio, launcher)
        self.send(EXIT, json.dumps(_describe(status)).encode())

    def _compile(self, argv: list[str]) -> int:
        """Run the compile step: its messages as stderr, then COMPILED; its wait status."""
        started = time.monotonic()
        stdio = start.compiler_output()
        pid = start.spawn(argv, stdio)
        stdio.close_child_ends()
        status = self._relay(pid, stdio, None)
        ms = round((time.monotonic() - started) * 1e3, 2)
        self.send(COMPILED, json.dumps({"ok": status == 0, "ms": ms}).encode())
        return status

    def _start(
        self, job: dict[str, Any], mode: str, warm: Launcher | None
    ) -> tuple[int, start.Stdio, Launcher | None]:
        tty = job.get("tty")
        stdio = start.terminal(tty["rows"], tty["cols"]) if tty else None
        if mode == "launcher":
            assert warm is not None
            launcher = warm
            if stdio is not None:  # the warm launcher's streams are pipes: start one on the pty
                _kill(warm.pid)
                launcher = self.start_launcher(job["launcher"], stdio)
            entry = os.path.join(WORKSPACE, job["entry"])
            request = {"entry": entry, "args": job["args"], "tty": bool(tty)}
            launcher.control.sendall(json.dumps(request).encode() + b"\n")
            return launcher.pid, launcher.stdio, launcher
        stdio = stdio or start.pipes(ordered=mode == "python")
        if mode == "python":
            pid = start.fork_python(job["entry"], job["args"], stdio)
        else:
            pid = start.spawn([*job["run"], *job["args"]], stdio)
        stdio.close_child_ends()
        return pid, stdio, None

    def _relay(self, pid: int, stdio: start.Stdio, launcher: Launcher | None) -> int:
        """Relay output and input until the process has ended and its output is drained."""
        open_sources = dict(stdio.sources)
        ordered = FrameReader(max_frame=ORDERED_PAYLOAD)
        for fd, kind in open_sources.items():
            self.sel.register(fd, selectors.EVENT_READ, kind)
        if launcher is not None:
            self.sel.register(launcher.control, selectors.EVENT_READ, _LAUNCHER)
        status: int | None = None
        self._watch_stdin()  # input that arrived before the program did
        while open_sources or status is None:
            for key, _ in self.sel.select():
                fd, kind = int(key.fd), key.data
                if kind in open_sources.values() and fd in open_sources:
                    if not self._forward(fd, kind, ordered):
                        self.sel.unregister(fd)
                        os.close(fd)
                        del open_sources[fd]
                elif kind == _EXITED:
                    with contextlib.suppress(BlockingIOError):
                        os.read(fd, CHUNK)  # drain the wake-ups
                    found = _reap(pid)
                    if found is not None and status is None:
                        status = found
                        if self.stdin.fd is not None:  # the program ended, not its compiler
                            self.stdin.close()
                        _kill_leftovers(pid)
                elif kind == _WORKER:
                    self._on_worker(os.read(fd, CHUNK) or None)
                elif kind == _LAUNCHER and launcher:
                    self._on_launcher(launcher)
                    self.sel.unregister(fd)  # one report: the program may write there later
                self._watch_stdin()
        if launcher is not None and launcher.control.fileno() in self.sel.get_map():
            self.sel.unregister(launcher.control)
        return status

    def _forward(self, fd: int, kind: bytes, ordered: FrameReader) -> bool:
        """Relay what `fd` has as frames; False once it has ended."""
        try:
            data = os.read(fd, CHUNK)
        except OSError as exc:  # a pty whose every slave is closed answers EIO
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            return False
        if kind == start.ORDERED:
            try:
                for stream, payload in ordered.feed(data):
                    if stream in (STDOUT, STDERR) and payload:
                        self.send(stream, payload)
            except FrameTooLarge:  # the program wrote garbage on the channel: stop reading it
                return False
        else:
            self.send(STDOUT if kind == start.PTY else kind, data)
        return True

    def _on_worker(self, data: bytes | None) -> None:
        """Frames after the job; `data` empty to take those read with the job, None at EOF."""
        if data is None:
            self.sel.unregister(self.control)
            return
        for kind, payload in self.reader.feed(data):
            if kind == STDIN:
                self.stdin.add(payload)
            elif kind == STDIN_EOF:
                self.stdin.end()
        self._watch_stdin()

    def _on_launcher(self, launcher: Launcher) -> None:
        """A launcher's one report, `compiled <0|1> <ms>` after compiling in its runtime."""
        try:
            words = launcher.control.recv(REPORT_MAX).decode(errors="replace").split()
            ok, ms = words[1] == "1", float(words[2])
        except (OSError, IndexError, ValueError):
            return
        if words[0] == "compiled":
            self.send(COMPILED, json.dumps({"ok": ok, "ms": ms}).encode())

    def _watch_stdin(self) -> None:
        """Wait for the program's stdin to be writable only while input is waiting."""
        want = self.stdin.flush()
        if want and self._stdin_watched is None and self.stdin.fd is not None:
            self.sel.register(self.stdin.fd, selectors.EVENT_WRITE, _STDIN)
            self._stdin_watched = self.stdin.fd
        elif not want and self._stdin_watched is not None:
            self.sel.unregister(self._stdin_watched)
            self._stdin_watched = None


def _read_line(sock: socket.socket) -> str:
    """The launcher's first line, `ready`, written before any user code runs."""
    line = b""
    while not line.endswith(b"\n") and len(line) < REPORT_MAX:
        chunk = sock.recv(1)
        if not chunk:
            break
        line += chunk
    sock.setblocking(False)
    return line.decode(errors="replace").strip()


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


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


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
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:  # a real-time signal has no name of its own
            name = f"SIG{number}"
        return {"exit_code": None, "signal": name, "oom_kills": kills}
    return {"exit_code": os.WEXITSTATUS(status), "signal": None, "oom_kills": kills}
