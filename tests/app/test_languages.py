"""Every language, one suite: what a user of each expects, and the hostile basics, against the
real service. The programs are in `tests/app/programs.py`."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from runtimes.registry import RUNTIMES
from tests.app import programs
from tests.client import Client

LANGUAGES = sorted(RUNTIMES)
COMPILED = sorted(lang for lang, rt in RUNTIMES.items() if rt.compiled)


def run(server: Client, language: str, source: str | programs.Files, **more: Any) -> dict[str, Any]:
    return server.run(**programs.body(language, source, **more))


@pytest.mark.parametrize("language", LANGUAGES)
def test_hello(server: Client, language: str) -> None:
    result = run(server, language, programs.HELLO[language])
    assert (result["status"], result["exit_code"], result["stdout"]) == ("completed", 0, "hello\n")
    assert result["stderr"] == ""
    compiled = result["timings"]["compile_ms"]
    assert (compiled is not None) == RUNTIMES[language].compiled


@pytest.mark.parametrize("language", LANGUAGES)
def test_stdin_echo(server: Client, language: str) -> None:
    result = run(server, language, programs.ECHO[language], stdin="typed line\n")
    assert (result["status"], result["stdout"]) == ("completed", "typed line\n")


@pytest.mark.parametrize("language", LANGUAGES)
def test_non_zero_exit(server: Client, language: str) -> None:
    result = run(server, language, programs.EXIT_3[language])
    assert (result["status"], result["exit_code"]) == ("completed", 3)


@pytest.mark.parametrize("language", LANGUAGES)
def test_runtime_error_reaches_stderr(server: Client, language: str) -> None:
    source, word = programs.RUNTIME_ERROR[language]
    result = run(server, language, source)
    assert result["status"] == "completed"
    assert result["exit_code"] != 0 or result["signal"] is not None
    assert word in result["stderr"]


@pytest.mark.parametrize("language", COMPILED)
def test_compile_error(server: Client, language: str) -> None:
    result = run(server, language, programs.COMPILE_ERROR[language])
    assert result["status"] == "compile_error", result
    assert result["stderr"] and result["stdout"] == ""
    assert result["timings"]["compile_ms"] is not None


@pytest.mark.parametrize("language", LANGUAGES)
def test_multi_file(server: Client, language: str) -> None:
    result = run(server, language, programs.MULTI_FILE[language])
    assert (result["status"], result["stdout"]) == ("completed", "from util\n"), result


@pytest.mark.parametrize("language", LANGUAGES)
def test_args(server: Client, language: str) -> None:
    result = run(server, language, programs.ARGS[language], args=["a", "b c"])
    assert result["stdout"] == "a b c\n"


@pytest.mark.parametrize("language", LANGUAGES)
def test_output_is_live(server: Client, language: str) -> None:
    """The first line arrives well before the program (which then sleeps 2 s) ends."""
    reply = server.request(
        "POST", "/api/v1/execute", programs.body(language, programs.LIVE[language])
    )
    arrivals: list[tuple[float, dict[str, Any]]] = []
    with server.socket(reply.body["execution_id"]) as ws:
        while not arrivals or arrivals[-1][1]["type"] != "exit":
            arrivals.append((time.monotonic(), json.loads(ws.recv(timeout=60))))
    first = next(at for at, f in arrivals if f["type"] == "stdout")
    assert arrivals[-1][0] - first > 1.5, "output was held back until the end"
    text = "".join(f["data"] for _, f in arrivals if f["type"] == "stdout")
    assert text == "first\nsecond\n"


@pytest.mark.parametrize("language", LANGUAGES)
def test_infinite_loop_times_out(server: Client, language: str) -> None:
    result = run(server, language, programs.LOOP[language], timeout_s=2)
    assert result["status"] == "timed_out"
    assert result["timings"]["run_ms"] < 5000


@pytest.mark.parametrize("language", LANGUAGES)
def test_memory_bomb_exceeds_memory(server: Client, language: str) -> None:
    result = run(server, language, programs.MEMORY_BOMB[language], memory_mb=128, timeout_s=15)
    assert result["status"] == "memory_exceeded", result


@pytest.mark.parametrize("language", LANGUAGES)
def test_output_flood_exceeds_output(server: Client, language: str) -> None:
    result = run(server, language, programs.FLOOD[language], timeout_s=10)
    assert (result["status"], result["truncated"]) == ("output_exceeded", True)


def test_runtimes_lists_every_language_with_its_image_version(server: Client) -> None:
    listed = {r["language"]: r for r in server.request("GET", "/api/v1/runtimes").body}
    assert sorted(listed) == LANGUAGES
    for language, entry in listed.items():
        assert entry["compiled"] == RUNTIMES[language].compiled
        assert entry["version"] and entry["version"][0].isdigit(), entry
    assert "js" in listed["javascript"]["aliases"] and "golang" in listed["go"]["aliases"]


def test_a_request_for_another_version_is_refused(server: Client) -> None:
    reply = server.request(
        "POST", "/api/v1/execute", {"language": "python", "version": "2.7", "code": "print(1)"}
    )
    assert reply.status == 422 and reply.body["error"]["field"] == "version"
    assert server.run(language="python", version="3", code="print(1)")["stdout"] == "1\n"


def test_a_program_cannot_extend_its_time_by_forging_a_compile_report(server: Client) -> None:
    code = (
        "const fs = require('fs');\n"
        "setInterval(() => { try { fs.writeSync(4, 'compiled 0 1\\n'); } catch (e) {} }, 200);"
    )
    result = server.run(language="javascript", code=code, timeout_s=2)
    assert result["status"] == "timed_out" and result["timings"]["run_ms"] < 4000


def test_the_entry_file_keeps_its_name(server: Client) -> None:
    files = [{"name": "script.sh", "content": "echo $0"}]
    assert server.run(language="bash", files=files)["stdout"] == "script.sh\n"


def test_javascript_ends_as_node_does(server: Client) -> None:
    """The launcher exits as soon as the loop is empty, but never before the program's own
    beforeExit work, and with its exit code."""
    code = (
        "let n = 0;\nprocess.on('beforeExit', () => {\n"
        "  if (n++ < 2) setTimeout(() => console.log('again', n), 10);\n});\n"
        "process.exitCode = 4;"
    )
    result = server.run(language="javascript", code=code)
    assert (result["stdout"], result["exit_code"]) == ("again 1\nagain 2\n", 4)
