"""Output as a terminal shows it: stdout and stderr in the order written (Python, and Java,
which compiles), and `tty` runs under a pseudo-terminal with stdin typed from the socket."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.client import Client

ALTERNATING = {
    "python": "import sys\nfor i in range(200):\n    print(i)\n    print(-i, file=sys.stderr)",
    "java": (
        "public class Main { public static void main(String[] a) {\n"
        "    for (int i = 0; i < 200; i++) { System.out.println(i); System.err.println(-i); } } }"
    ),
}


def _lines(frames: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f["type"], line) for f in frames for line in f["data"].splitlines()]


@pytest.mark.parametrize("language", sorted(ALTERNATING))
def test_stdout_and_stderr_arrive_in_the_order_written(server: Client, language: str) -> None:
    execution_id = server.submit(language=language, code=ALTERNATING[language])
    seen = server.watch(execution_id)
    expected = [(t, str(v)) for i in range(200) for t, v in (("stdout", i), ("stderr", -i))]
    assert _lines(seen.output) == expected
    assert seen.exit["status"] == "completed"


def test_a_traceback_comes_after_the_output_before_it(server: Client) -> None:
    seen = server.watch(server.submit(code="print('before')\nraise KeyError('k')"))
    assert seen.output[0]["type"] == "stdout"
    assert seen.output[-1]["type"] == "stderr" and "KeyError" in seen.output[-1]["data"]


def test_a_terminal_run_is_a_tty_with_one_stream(server: Client) -> None:
    code = (
        "import os, sys\nprint(sys.stdout.isatty(), sys.stdin.isatty(), os.get_terminal_size())\n"
        "print('\\x1b[31mred\\x1b[0m')\nprint('oops', file=sys.stderr)"
    )
    seen = server.watch(server.submit(code=code, tty=True))
    assert {f["type"] for f in seen.output} == {"stdout"}
    text = seen.text().replace("\r\n", "\n")
    assert text.startswith("True True os.terminal_size(columns=80, lines=24)\n")
    assert "\x1b[31mred\x1b[0m\n" in text and text.endswith("oops\n")


def test_a_terminal_takes_stdin_as_typed(server: Client) -> None:
    code = "name = input('name? ')\nprint('hello', name)"
    execution_id = server.submit(code=code, tty=True, interactive=True)
    frames: list[dict[str, Any]] = []
    with server.socket(execution_id) as ws:
        while "name? " not in "".join(f.get("data", "") for f in frames):
            frames.append(json.loads(ws.recv(timeout=30)))
        ws.send(json.dumps({"type": "stdin", "data": "ada\n"}))
        while frames[-1]["type"] != "exit":
            frames.append(json.loads(ws.recv(timeout=30)))
    text = "".join(f.get("data", "") for f in frames if f["type"] == "stdout")
    assert text.replace("\r\n", "\n") == "name? ada\nhello ada\n"  # the terminal echoes input


def test_a_terminal_run_of_a_launcher_language(server: Client) -> None:
    code = "console.log(process.stdout.isTTY === true, process.stdout.columns)"
    result = server.run(language="javascript", code=code, tty=True)
    assert result["stdout"].replace("\r\n", "\n") == "true 80\n"
