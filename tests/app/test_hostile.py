"""Hostile code is normal input: each case gets its terminal status within its limits, the
service keeps serving, the host is unharmed, and no container is left behind (session check).

All cases are submitted at once and watched in parallel; each test then checks one result.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.client import Client

CASES: dict[str, dict[str, Any]] = {
    "infinite_loop": {"code": "while True:\n    pass", "timeout_s": 1},
    "sleep_forever": {"code": "import time\ntime.sleep(10**6)", "timeout_s": 1},
    "fork_bomb": {
        "code": "import os\nwhile True:\n    try:\n        os.fork()\n"
        "    except OSError:\n        pass",
        "timeout_s": 2,
    },
    "memory_bomb": {
        "code": "blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))",
        "memory_mb": 64,
    },
    "stdout_flood": {"code": "while True:\n    print('x' * 999)"},
    "stderr_flood": {"code": "import sys\nwhile True:\n    sys.stderr.write('y' * 1000)"},
    "binary_output": {
        "code": "import sys\n"
        "sys.stdout.buffer.write(b'ok \\xff\\xfe\\x00 \\xe2\\x82')\n"
        "sys.stdout.flush()"
    },
    "network": {
        "code": "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)",
        "timeout_s": 5,
    },
    "dns": {"code": "import socket\nsocket.getaddrinfo('example.com', 80)", "timeout_s": 5},
    "write_outside_workspace": {
        "code": "for path in ('/etc/passwd', '/opt/coderunner/agent.py', '/usr/evil'):\n"
        "    try:\n        open(path, 'a').write('x')\n        print('wrote', path)\n"
        "    except OSError as exc:\n        print('refused', exc.errno)"
    },
    "fill_workspace": {
        "code": "f = open('big', 'wb')\nwhile True:\n    f.write(b'0' * 2**20)\n    f.flush()",
        "memory_mb": 512,
    },
    "host_secrets": {
        "code": "import os\n"
        "print(os.path.exists('/var/run/docker.sock'))\n"
        "try:\n    open('/etc/shadow').read()\n    print('read')\n"
        "except OSError as exc:\n    print('refused', exc.errno)\n"
        "print([l for l in open('/proc/self/status') if l.startswith('CapEff')][0].split()[1])\n"
        "print(os.getuid())"
    },
    "kill_pid_1": {"code": "import os, signal\nos.kill(1, signal.SIGKILL)\nprint('still here')"},
    "close_stdout_early": {
        "code": "import os, sys\n"
        "print('before', flush=True)\nos.close(1)\nsys.stderr.write('after')"
    },
    "sigsegv": {"code": "import ctypes\nctypes.string_at(0)"},
    "forge_agent_frames": {
        "code": "for fd in (0, 1, 2):\n"
        "    try:\n        open(f'/proc/1/fd/{fd}', 'wb')\n        print('opened', fd)\n"
        "    except OSError as exc:\n        print('refused', exc.errno)"
    },
}


@pytest.fixture(scope="module")
def hostile(server: Client) -> dict[str, dict[str, Any]]:
    """Every case's final result, all run concurrently."""
    return server.run_all(CASES)


@pytest.mark.parametrize("name", ["infinite_loop", "sleep_forever", "fork_bomb"])
def test_runaways_time_out_at_their_deadline(hostile: dict[str, dict[str, Any]], name: str) -> None:
    result = hostile[name]
    assert result["status"] == "timed_out"
    assert result["signal"] == "SIGKILL"
    limit_ms = CASES[name]["timeout_s"] * 1000
    assert limit_ms <= result["timings"]["run_ms"] < limit_ms + 1500


def test_memory_bomb_is_memory_exceeded(hostile: dict[str, dict[str, Any]]) -> None:
    assert hostile["memory_bomb"]["status"] == "memory_exceeded"


@pytest.mark.parametrize(
    ("name", "stream"), [("stdout_flood", "stdout"), ("stderr_flood", "stderr")]
)
def test_floods_are_cut_at_the_output_limit(
    hostile: dict[str, dict[str, Any]], name: str, stream: str
) -> None:
    result = hostile[name]
    assert result["status"] == "output_exceeded" and result["truncated"] is True
    assert len(result[stream].encode()) == 1024 * 1024  # the default limit, kept whole


def test_binary_and_invalid_utf8_output_is_replaced_not_fatal(
    hostile: dict[str, dict[str, Any]],
) -> None:
    result = hostile["binary_output"]
    assert result["status"] == "completed" and result["exit_code"] == 0
    assert result["stdout"].startswith("ok \ufffd\ufffd\x00 \ufffd")


@pytest.mark.parametrize(
    ("name", "error"),
    [("network", "Network is unreachable"), ("dns", "Temporary failure in name resolution")],
)
def test_no_network(hostile: dict[str, dict[str, Any]], name: str, error: str) -> None:
    result = hostile[name]
    assert (result["status"], result["exit_code"]) == ("completed", 1)
    assert error in result["stderr"]


def test_the_filesystem_outside_the_workspace_is_read_only(
    hostile: dict[str, dict[str, Any]],
) -> None:
    result = hostile["write_outside_workspace"]
    assert result["exit_code"] == 0 and "wrote" not in result["stdout"]
    # EACCES where the runner user may not write, EROFS everywhere else
    assert set(result["stdout"].splitlines()) <= {"refused 13", "refused 30"}
    assert result["stdout"].count("refused") == 3


def test_filling_the_workspace_hits_its_size_limit(hostile: dict[str, dict[str, Any]]) -> None:
    result = hostile["fill_workspace"]
    assert (result["status"], result["exit_code"]) == ("completed", 1)
    assert "No space left on device" in result["stderr"]


def test_no_host_secrets_and_no_privileges(hostile: dict[str, dict[str, Any]]) -> None:
    result = hostile["host_secrets"]
    assert result["stdout"].split("\n")[:4] == ["False", "refused 13", "0000000000000000", "10001"]


def test_pid_1_cannot_be_killed(hostile: dict[str, dict[str, Any]]) -> None:
    assert hostile["kill_pid_1"]["stdout"] == "still here\n"
    assert hostile["kill_pid_1"]["status"] == "completed"


def test_closing_stdout_early_still_ends_cleanly(hostile: dict[str, dict[str, Any]]) -> None:
    result = hostile["close_stdout_early"]
    assert result["status"] == "completed" and result["stdout"] == "before\n"
    assert result["stderr"].startswith("after")


def test_a_crash_is_reported_with_its_signal(hostile: dict[str, dict[str, Any]]) -> None:
    result = hostile["sigsegv"]
    assert (result["status"], result["exit_code"], result["signal"]) == (
        "completed",
        None,
        "SIGSEGV",
    )


def test_the_agents_stream_cannot_be_forged(hostile: dict[str, dict[str, Any]]) -> None:
    result = hostile["forge_agent_frames"]
    assert result["stdout"] == "refused 13\n" * 3 and result["status"] == "completed"


def test_the_service_keeps_serving_afterwards(
    hostile: dict[str, dict[str, Any]], server: Client
) -> None:
    assert len(hostile) == len(CASES)
    assert server.run(code="print('fine')")["stdout"] == "fine\n"
    assert server.request("GET", "/readyz").status == 200
    assert os.path.exists("/etc/passwd")  # the host is unharmed
