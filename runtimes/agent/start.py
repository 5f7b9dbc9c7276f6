"""Starting the program (or its compiler) with its standard streams, as a child of the agent.

Three ways, by the runtime's mode: a fork of the agent itself that runs Python in its
already loaded interpreter; an exec of a command (a compiler, a compiled binary, bash, or
a cold launcher); or a launcher process started while the container was warming, which
gets its job over a control socket and runs the program in an already loaded runtime.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import struct
import termios
import traceback
from dataclasses import dataclass, field

from .protocol import LAUNCHER_CONTROL_FD, STDERR, STDOUT
from .pyrun import WORKSPACE, run_python

ORDERED, PTY = b"o", b"t"  # read-side kinds besides STDOUT/STDERR
PR_SET_DUMPABLE = 4


@dataclass
class Stdio:
    """One program's standard streams: the agent's ends and the child's."""

    stdin: int  # the agent writes the program's input here (a pipe, or the pty master)
    sources: dict[int, bytes]  # fds the agent reads, with what they carry
    child: list[int] = field(default_factory=list)  # fds 0, 1, 2, ... of the child
    tty: bool = False

    def close_child_ends(self) -> None:
        for fd in set(self.child):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.child = []


def pipes(ordered: bool) -> Stdio:
    """Pipes for 0/1/2, and the ordered channel on fd 3 when the runtime writes frames."""
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    stdio = Stdio(stdin_w, {out_r: STDOUT, err_r: STDERR}, [stdin_r, out_w, err_w])
    if ordered:
        ordered_r, ordered_w = os.pipe()
        stdio.sources[ordered_r] = ORDERED
        stdio.child.append(ordered_w)
    return stdio


def terminal(rows: int, cols: int) -> Stdio:
    """A pseudo-terminal of `rows` x `cols`: one ordered stream, as a terminal shows it."""
    master, slave = os.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    # Input is written through its own descriptor, so reading and writing are watched apart.
    return Stdio(os.dup(master), {master: PTY}, [slave, slave, slave], tty=True)


def compiler_output() -> Stdio:
    """A compiler's streams: no input, stdout and stderr both shown as stderr."""
    out_r, out_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    return Stdio(-1, {out_r: STDERR}, [devnull, out_w, out_w])


def launcher_control() -> tuple[socket.socket, socket.socket]:
    """The agent's and the launcher's ends of the control socket."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def spawn(argv: list[str], stdio: Stdio, extra: list[int] | None = None) -> int:
    """Fork and exec `argv` with `stdio` (and `extra` fds after them); its pid."""
    pid = os.fork()
    if pid == 0:
        _become_program(stdio, extra or [])
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            os.write(2, f"cannot run {argv[0]}: {exc.strerror}\n".encode())
        os._exit(127)
    return pid


def spawn_launcher(argv: list[str], stdio: Stdio, control: socket.socket) -> int:
    """Start a launcher: its ordered channel on fd 3 (none under a terminal), control on 4."""
    missing = LAUNCHER_CONTROL_FD - len(stdio.child)
    padding = [os.open(os.devnull, os.O_WRONLY)] * missing if missing > 0 else []
    try:
        return spawn(argv, stdio, [*padding, control.fileno()])
    finally:
        for fd in set(padding):
            os.close(fd)


def fork_python(entry: str, args: list[str], stdio: Stdio) -> int:
    """Fork this interpreter to run `entry`; its pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _become_program(stdio, [])
            ordered = ORDERED in stdio.sources.values()
            code = run_python(os.path.join(WORKSPACE, entry), args, ordered)
        except BaseException:  # the agent's own failure: say so on the program's stderr
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def _become_program(stdio: Stdio, extra: list[int]) -> None:
    """In the child: its own session, its fds at 0, 1, 2, ... and nothing else, defaults."""
    os.setsid()
    set_dumpable(1)  # the program may inspect itself (/proc/self) as usual
    wanted = stdio.child + extra
    high = [os.dup(fd) for fd in wanted]  # out of the way of the targets first
    for target, fd in enumerate(high):
        os.dup2(fd, target)
    os.closerange(len(wanted), 65536)
    if stdio.tty:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    default_signals()
    os.chdir(WORKSPACE)


def ignore_signals() -> None:
    """Ignore every signal but SIGCHLD, the agent's wake-up (its handler is set per run).

    PID 1 of a pid namespace receives, from inside it, only the signals it has a handler
    for. Python installs one for SIGINT, so `os.kill(1, SIGINT)` from the program (same
    uid) would end the agent and forge an infrastructure failure. Ignoring SIGPIPE also
    turns a vanished reader into BrokenPipeError. SIGKILL and SIGSTOP cannot be caught:
    Linux drops them when they come from inside the namespace (gVisor does not).
    """
    for sig in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD}:
        signal.signal(sig, signal.SIG_IGN)


def default_signals() -> None:
    """Undo `ignore_signals` and the SIGCHLD wake-up for the program: an ignored signal
    would survive its exec. SIGINT raises KeyboardInterrupt, as python sets it."""
    signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}:
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def set_dumpable(value: int) -> None:
    """PR_SET_DUMPABLE: at 0, /proc/1 is root's, so the program (same uid) cannot open the
    agent's file descriptors and write forged frames into the worker's stream."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, value, 0, 0, 0)
