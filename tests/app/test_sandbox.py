"""The sandbox's own walls: the agent (PID 1) shrugs off signals from the program, the
program starts with default signal dispositions, and the kernel calls a code runner never
needs are refused by the seccomp profile (applied by runc, the default runtime).

All cases are submitted at once and watched in parallel; each test then checks one result.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from tests.client import Client

LIBC = "import ctypes, errno\nlibc = ctypes.CDLL(None, use_errno=True)\n"

CASES: dict[str, dict[str, Any]] = {
    "signal_pid_1": {
        # Every signal number, SIGKILL and SIGSTOP included: none may end or stop the agent.
        "code": "import os, time\n"
        "for sig in range(1, 65):\n"
        "    try:\n        os.kill(1, sig)\n"
        "    except OSError as exc:\n        print('refused', sig, exc.errno)\n"
        "time.sleep(0.5)\n"  # time for the agent to act on whatever reached it
        "print('alive')"
    },
    "signal_dispositions": {
        "code": "for line in open('/proc/self/status'):\n"
        "    if line.startswith(('SigBlk', 'SigIgn', 'SigCgt')):\n"
        "        print(line.strip())"
    },
    "io_uring": {
        "code": LIBC + "params = ctypes.create_string_buffer(120)\n"
        "fd = libc.syscall(425, 4, params)\n"  # io_uring_setup(4 entries, &params) on x86_64
        "print(fd, errno.errorcode.get(ctypes.get_errno()) if fd < 0 else 'opened')"
    },
    "ptrace": {
        "code": LIBC + "result = libc.ptrace(0, 0, None, None)\n"  # PTRACE_TRACEME
        "print(result, errno.errorcode.get(ctypes.get_errno()) if result < 0 else 'traced')"
    },
}


@pytest.fixture(scope="module")
def results(server: Client) -> dict[str, dict[str, Any]]:
    """Every case's final result, all run concurrently."""
    return server.run_all(CASES)


def test_no_signal_from_the_program_ends_the_agent(results: dict[str, dict[str, Any]]) -> None:
    result = results["signal_pid_1"]
    assert (result["status"], result["exit_code"], result["failure_code"]) == (
        "completed",
        0,
        None,
    ), result
    assert result["stdout"] == "alive\n"


def test_the_program_starts_with_default_signal_dispositions(
    results: dict[str, dict[str, Any]],
) -> None:
    """Nothing blocked or ignored (an ignored signal would survive an exec), and only SIGINT
    caught: python's KeyboardInterrupt. Signal 32 (glibc's own, which no program can set
    through libc) arrives ignored from the container runtime, as in any `docker run`."""
    result = results["signal_dispositions"]
    masks = dict(line.split(":\t") for line in result["stdout"].splitlines())
    assert signals(masks["SigBlk"]) == set(), result
    assert signals(masks["SigIgn"]) <= {32}, result
    assert signals(masks["SigCgt"]) == {signal.SIGINT}, result


def signals(mask: str) -> set[int]:
    """The signal numbers in one of /proc/<pid>/status's hexadecimal masks."""
    bits = int(mask, 16)
    return {n for n in range(1, 65) if bits & (1 << (n - 1))}


@pytest.mark.parametrize(
    ("name", "refusals"), [("io_uring", {"-1 ENOSYS", "-1 EPERM"}), ("ptrace", {"-1 EPERM"})]
)
def test_calls_a_code_runner_never_needs_are_refused(
    results: dict[str, dict[str, Any]], name: str, refusals: set[str]
) -> None:
    result = results[name]
    assert result["status"] == "completed" and result["exit_code"] == 0, result
    assert result["stdout"].strip() in refusals
