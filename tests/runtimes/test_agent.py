"""The agent as a process on the host, spoken to over its protocol: ordered output, a terminal,
a compile step, exec mode. (In a container it is PID 1; here it is a child of the test.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runtimes.agent.protocol import (
    COMPILED,
    EXIT,
    JOB,
    READY,
    STDERR,
    STDIN,
    STDIN_EOF,
    STDOUT,
    FrameReader,
    frame,
)


@dataclass
class Ran:
    frames: list[tuple[bytes, bytes]] = field(default_factory=list)

    def text(self, kind: bytes) -> str:
        return b"".join(p for k, p in self.frames if k == kind).decode()

    @property
    def output(self) -> list[tuple[bytes, bytes]]:
        return [(k, p) for k, p in self.frames if k in (STDOUT, STDERR)]

    def report(self, kind: bytes) -> dict[str, Any]:
        (payload,) = [p for k, p in self.frames if k == kind]
        decoded: dict[str, Any] = json.loads(payload)
        return decoded


def run_agent(
    workspace: Path, mode: str, job: dict[str, Any], *more: bytes, timeout: float = 20
) -> Ran:
    """Start the agent in `mode`, wait for READY, send the job (and `more` frames), read to EXIT."""
    job = {"args": [], "stdin": "", "interactive": False, "tty": None, **job}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtimes.agent", mode],
        cwd=workspace,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert proc.stdin is not None and proc.stdout is not None
    reader, ran = FrameReader(), Ran()
    try:
        proc.stdin.write(frame(JOB, json.dumps(job).encode()) + b"".join(more))
        proc.stdin.flush()
        while not ran.frames or ran.frames[-1][0] != EXIT:
            data = os.read(proc.stdout.fileno(), 65536)
            assert data, f"the agent ended without EXIT: {ran.frames}"
            ran.frames += [f for f in reader.feed(data) if f[0] != READY]
    finally:
        proc.send_signal(signal.SIGKILL)  # it ignores the polite signals, as PID 1 must
        proc.wait(timeout)
        proc.stdin.close()
        proc.stdout.close()
    return ran


def python_job(code: str, **more: Any) -> dict[str, Any]:
    return {"files": [{"name": "main.py", "content": code}], "entry": "main.py", **more}


def test_stdout_and_stderr_keep_the_order_they_were_written_in(tmp_path: Path) -> None:
    code = "import sys\nfor i in range(300):\n    print(i)\n    print(-i, file=sys.stderr)"
    ran = run_agent(tmp_path, "python", python_job(code))
    lines = [(kind, line) for kind, p in ran.output for line in p.decode().splitlines()]
    expected = [(k, str(v)) for i in range(300) for k, v in ((STDOUT, i), (STDERR, -i))]
    assert lines == expected
    assert ran.report(EXIT)["exit_code"] == 0


def test_a_traceback_follows_the_output_before_it(tmp_path: Path) -> None:
    ran = run_agent(tmp_path, "python", python_job("print('before')\n1 / 0"))
    kinds = [k for k, _ in ran.output]
    assert kinds[0] == STDOUT and kinds[-1] == STDERR
    assert "ZeroDivisionError" in ran.text(STDERR) and ran.report(EXIT)["exit_code"] == 1


def test_a_terminal_run_is_one_stream_and_is_a_tty(tmp_path: Path) -> None:
    code = (
        "import sys, os\nprint(sys.stdout.isatty(), os.get_terminal_size())\n"
        "print('err', file=sys.stderr)\nprint('got', input())"
    )
    job = python_job(code, tty={"rows": 30, "cols": 100}, stdin="typed\n")
    ran = run_agent(tmp_path, "python", job)
    assert {k for k, _ in ran.output} == {STDOUT}
    text = ran.text(STDOUT).replace("\r\n", "\n")
    assert "True os.terminal_size(columns=100, lines=30)" in text
    assert text.index("err") < text.index("got typed")


@pytest.mark.parametrize("mode", ["python", "exec"])
def test_the_requests_stdin_reaches_a_program_that_waits_for_it(tmp_path: Path, mode: str) -> None:
    job = (
        python_job("print(input().upper())", stdin="abc\n")
        if mode == "python"
        else {"files": [], "entry": "x", "run": ["sh", "-c", "read x; echo $x"], "stdin": "abc\n"}
    )
    ran = run_agent(tmp_path, mode, job, timeout=10)
    assert ran.text(STDOUT).lower() == "abc\n"


def test_interactive_stdin_reaches_the_program(tmp_path: Path) -> None:
    code = "import sys\nfor line in sys.stdin:\n    print(line.strip().upper())"
    ran = run_agent(
        tmp_path,
        "python",
        python_job(code, interactive=True, stdin="a\n"),
        frame(STDIN, b"b\n"),
        frame(STDIN_EOF),
    )
    assert ran.text(STDOUT) == "A\nB\n"


def test_a_compile_step_reports_before_the_program_runs(tmp_path: Path) -> None:
    job = {
        "files": [{"name": "main.sh", "content": "echo run $1; echo oops >&2; exit 4"}],
        "entry": "main.sh",
        "compile": ["sh", "-c", "echo checking >&2; test -f main.sh"],
        "run": ["sh", "main.sh"],
        "args": ["x"],
    }
    ran = run_agent(tmp_path, "exec", job)
    assert [k for k, _ in ran.frames][:2] == [STDERR, COMPILED]
    assert ran.report(COMPILED)["ok"] is True and ran.report(COMPILED)["ms"] >= 0
    assert ran.text(STDOUT) == "run x\n" and ran.text(STDERR) == "checking\noops\n"
    assert ran.report(EXIT)["exit_code"] == 4


def test_the_requests_stdin_survives_the_compile_step(tmp_path: Path) -> None:
    job = {
        "files": [{"name": "main.sh", "content": "read x; echo got $x"}],
        "entry": "main.sh",
        "compile": ["sh", "-c", "true"],
        "run": ["sh", "main.sh"],
        "stdin": "abc\n",
    }
    assert run_agent(tmp_path, "exec", job).text(STDOUT) == "got abc\n"


def test_a_failed_compile_step_ends_the_job(tmp_path: Path) -> None:
    job = {
        "files": [{"name": "main.c", "content": "int main( {"}],
        "entry": "main.c",
        "compile": ["sh", "-c", "echo 'main.c:1: error: expected' >&2; exit 1"],
        "run": ["./main"],
    }
    ran = run_agent(tmp_path, "exec", job)
    assert ran.report(COMPILED)["ok"] is False
    assert ran.text(STDERR) == "main.c:1: error: expected\n" and ran.text(STDOUT) == ""
    assert ran.report(EXIT)["exit_code"] == 1


@pytest.mark.parametrize("mode", ["python", "exec"])
def test_a_missing_command_or_file_is_the_programs_failure(tmp_path: Path, mode: str) -> None:
    job = python_job("import nosuchmodule") if mode == "python" else {
        "files": [], "entry": "x", "run": ["no-such-command"]
    }  # fmt: skip
    ran = run_agent(tmp_path, mode, job)
    assert ran.report(EXIT)["exit_code"] in (1, 127) and ran.text(STDERR)


def test_a_program_killed_by_a_real_time_signal_is_reported(tmp_path: Path) -> None:
    job = {"files": [], "entry": "x", "run": ["sh", "-c", "kill -40 $$"]}
    assert run_agent(tmp_path, "exec", job).report(EXIT)["signal"] == "SIG40"


def test_a_terminal_gets_end_of_input_after_a_partial_line(tmp_path: Path) -> None:
    job = python_job("import sys\nprint(repr(sys.stdin.read()))", tty={"rows": 24, "cols": 80})
    ran = run_agent(tmp_path, "python", {**job, "stdin": "abc"}, timeout=10)
    assert "'abc'" in ran.text(STDOUT) and ran.report(EXIT)["exit_code"] == 0


def test_python_waits_for_threads_and_runs_atexit_like_python(tmp_path: Path) -> None:
    code = (
        "import atexit, threading, time\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
        "print('main returns')"
    )
    ran = run_agent(tmp_path, "python", python_job(code))
    assert ran.text(STDOUT) == "main returns\nthread done\natexit ran\n"


def test_empty_frames_on_the_ordered_channel_are_dropped(tmp_path: Path) -> None:
    code = "import os\nfor _ in range(100):\n    os.write(3, b'1\\0\\0\\0\\0' * 800)\nprint('end')"
    ran = run_agent(tmp_path, "python", python_job(code))
    assert ran.output == [(STDOUT, b"end\n")]
