"""`coderunner run`: the pure parts fast, then the command as a user runs it, against a real
server over `/ws/run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coderunner import exit_codes
from coderunner.exit_codes import Outcome
from coderunner.redis_server import EmbeddedRedis
from coderunner.run_client import (
    CommandLineError,
    file_names,
    language_for,
    parse,
    socket_url,
)
from tests.client import Client
from tests.processes import free_port, start, stop

# The command line: language and files


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("main.py", "python"),
        ("dir/x.PY", "python"),
        ("a.js", "javascript"),
        ("a.sh", "bash"),
        ("a.c", "c"),
        ("a.cpp", "cpp"),
        ("a.cc", "cpp"),
        ("Main.java", "java"),
        ("a.go", "go"),
        ("a.rs", "rust"),
    ],
)
def test_the_language_comes_from_the_extension(path: str, language: str) -> None:
    assert language_for(path, None) == language


def test_l_overrides_the_extension_and_takes_aliases() -> None:
    assert language_for("prog.txt", "py") == "python"
    assert language_for("main.py", "node") == "javascript"


def test_an_unknown_extension_or_language_is_a_usage_error_naming_the_choices() -> None:
    with pytest.raises(CommandLineError) as caught:
        language_for("notes.txt", None)
    assert caught.value.code == exit_codes.USAGE
    assert "-l LANG" in str(caught.value) and "python" in str(caught.value)
    assert "\n" not in str(caught.value)
    with pytest.raises(CommandLineError, match="one of: bash, c, cpp"):
        language_for("main.py", "cobol")


def test_files_are_named_relative_to_the_entry_points_directory() -> None:
    assert file_names(["src/main.py", "src/pkg/util.py", "/elsewhere/lib.py"]) == [
        "main.py",
        "pkg/util.py",
        "lib.py",
    ]
    assert file_names(["/abs/Hello.java", "../x/Util.java"]) == ["Hello.java", "Util.java"]


def test_a_name_the_server_would_refuse_or_a_duplicate_is_a_usage_error() -> None:
    with pytest.raises(CommandLineError, match="letters, digits"):
        file_names(["my program.py"])
    with pytest.raises(CommandLineError, match=r"both be sent as 'util\.py'"):
        file_names(["a/main.py", "b/util.py", "c/util.py"])


def test_the_socket_url_follows_the_server_url() -> None:
    assert socket_url("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/ws/run"
    assert socket_url("https://run.example/cr/") == "wss://run.example/cr/ws/run"
    assert socket_url("ws://h:1") == "ws://h:1/ws/run"
    with pytest.raises(CommandLineError, match="--server"):
        socket_url("127.0.0.1:8000")


def test_the_run_frame_carries_files_stdin_limits_and_program_args(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("import helper")
    (tmp_path / "helper.py").write_text("X = 1")
    (tmp_path / "in.txt").write_text("42\n")
    files = [str(tmp_path / "main.py"), str(tmp_path / "helper.py")]
    argv = [*files, "--stdin", str(tmp_path / "in.txt"), "--timeout", "2", "--", "-v", "x"]
    request = parse(argv, {}, stdin_is_terminal=True)
    assert request.url == "ws://127.0.0.1:8000/ws/run" and request.token is None
    assert request.body == {
        "language": "python",
        "files": [
            {"name": "main.py", "content": "import helper"},
            {"name": "helper.py", "content": "X = 1"},
        ],
        "args": ["-v", "x"],
        "tty": False,
        "interactive": False,
        "stdin": "42\n",
        "timeout_s": 2.0,
    }
    assert not request.forward_stdin and not request.raw_terminal


def test_without_stdin_the_run_is_interactive_and_tty_on_a_terminal_goes_raw(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.py").write_text("")
    env = {"CODERUNNER_SERVER": "https://cr.example", "CODERUNNER_TOKEN": "k1"}
    request = parse([str(tmp_path / "a.py"), "--tty"], env, stdin_is_terminal=True)
    assert request.body["interactive"] and request.body["tty"] and "stdin" not in request.body
    assert request.forward_stdin and request.raw_terminal
    assert (request.url, request.token) == ("wss://cr.example/ws/run", "k1")
    piped = parse([str(tmp_path / "a.py"), "--tty", "--token", "k2"], env, False)
    assert piped.forward_stdin and not piped.raw_terminal and piped.token == "k2"


def test_a_missing_file_is_no_input() -> None:
    with pytest.raises(CommandLineError) as caught:
        parse(["/nonexistent/main.py"], {}, stdin_is_terminal=False)
    assert caught.value.code == exit_codes.NO_INPUT


# Exit codes


COMPLETED = {"status": "completed", "exit_code": None, "signal": None}


@pytest.mark.parametrize(
    ("frame", "code", "message"),
    [
        ({**COMPLETED, "exit_code": 0}, 0, None),
        ({**COMPLETED, "exit_code": 3}, 3, None),
        ({**COMPLETED, "signal": "SIGSEGV"}, 139, "killed by SIGSEGV"),
        ({"status": "compile_error"}, 65, "compile error"),
        ({"status": "timed_out", "signal": "SIGKILL"}, 124, "timed out after 2.5 s"),
        ({"status": "memory_exceeded"}, 137, "memory limit exceeded (128 MB)"),
        ({"status": "output_exceeded"}, 141, "output limit exceeded: the output was truncated"),
        ({"status": "aborted"}, 130, "aborted"),
        ({"status": "failed", "failure_code": "agent_lost"}, 70, "the program (agent_lost)"),
    ],
)
def test_exit_frames_map_to_exit_statuses(
    frame: dict[str, object], code: int, message: str | None
) -> None:
    outcome = exit_codes.from_exit(frame, timeout_s=2.5, memory_mb=128)
    assert outcome.code == code
    assert outcome.message == message or (message and message in (outcome.message or ""))


def test_error_frames_and_close_codes_map_to_exit_statuses() -> None:
    limited = {"code": "rate_limited", "message": "slow down", "retry_after_s": 3}
    assert exit_codes.from_error(limited) == Outcome(75, "rate_limited: slow down; retry after 3 s")
    assert exit_codes.from_error({"code": "queue_full", "message": "m"}).code == 75
    assert exit_codes.from_error({"code": "unauthorized", "message": "m"}).code == 77
    assert exit_codes.from_error({"code": "code_too_large", "message": "m"}).code == 64
    assert exit_codes.from_error({"code": "internal", "message": "m"}).code == 70
    assert exit_codes.from_close(4401, "").code == 77
    assert exit_codes.from_close(4429, "").code == 75
    assert exit_codes.from_close(1013, "").code == 75
    assert exit_codes.from_close(1006, "").code == 69
    assert exit_codes.from_http_status(401).code == 77
    assert exit_codes.from_http_status(404).code == 69


# The command against a real server


def coderunner_run(
    *args: str, server: Client | str, input: str | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    base = server if isinstance(server, str) else server.base
    return subprocess.run(
        [sys.executable, "-m", "coderunner", "run", "--server", base, *args],
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        env={k: v for k, v in os.environ.items() if k != "CODERUNNER_TOKEN"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write(directory: Path, name: str, content: str) -> str:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return str(path)


def test_hello_world(server: Client, tmp_path: Path) -> None:
    done = coderunner_run(write(tmp_path, "hello.py", 'print("hello")'), server=server)
    assert (done.returncode, done.stdout, done.stderr) == (0, "hello\n", "")


def test_the_programs_exit_code_and_stderr_pass_through(server: Client, tmp_path: Path) -> None:
    program = 'import sys\nprint("out")\nprint("oops", file=sys.stderr)\nsys.exit(3)'
    done = coderunner_run(write(tmp_path, "fail.py", program), server=server)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "oops\n")


def test_a_signal_exits_128_plus_its_number(server: Client, tmp_path: Path) -> None:
    program = "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)"
    done = coderunner_run(write(tmp_path, "term.py", program), server=server)
    assert done.returncode == 128 + signal.SIGTERM
    assert done.stderr == "coderunner: killed by SIGTERM\n"


def test_stdin_from_a_file(server: Client, tmp_path: Path) -> None:
    program = write(
        tmp_path, "sum.py", "import sys\nprint(sum(map(int, sys.stdin.read().split())))"
    )
    numbers = write(tmp_path, "numbers.txt", "1 2 3\n4\n")
    done = coderunner_run(program, "--stdin", numbers, server=server)
    assert (done.returncode, done.stdout) == (0, "10\n")


def test_piped_stdin_answers_input(server: Client, tmp_path: Path) -> None:
    program = write(
        tmp_path, "ask.py", 'name = input("name? ")\nprint(f"hi {name}")\nprint(input())'
    )
    done = coderunner_run(program, server=server, input="Ada\nLovelace\n")
    assert (done.returncode, done.stdout) == (0, "name? hi Ada\nLovelace\n")


def test_stdin_dash_reads_all_of_stdin_up_front(server: Client, tmp_path: Path) -> None:
    program = write(tmp_path, "count.py", "import sys\nprint(len(sys.stdin.read().splitlines()))")
    done = coderunner_run(program, "--stdin", "-", server=server, input="a\nb\nc\n")
    assert (done.returncode, done.stdout) == (0, "3\n")


def test_extra_files_are_sent_alongside(server: Client, tmp_path: Path) -> None:
    main = write(
        tmp_path, "main.py", "import helper\nfrom pkg import util\nprint(helper.X + util.Y)"
    )
    helper = write(tmp_path, "helper.py", "X = 40")
    util = write(tmp_path, "pkg/util.py", "Y = 2")
    done = coderunner_run(main, helper, util, server=server)
    assert (done.returncode, done.stdout, done.stderr) == (0, "42\n", "")


def test_program_arguments_follow_a_double_dash(server: Client, tmp_path: Path) -> None:
    program = write(tmp_path, "argv.py", "import sys\nprint(sys.argv[1:])")
    done = coderunner_run(program, "--", "-x", "two words", server=server)
    assert done.stdout == "['-x', 'two words']\n"


def test_a_compile_error_exits_65_with_the_compilers_messages(
    server: Client, tmp_path: Path
) -> None:
    done = coderunner_run(write(tmp_path, "bad.c", "int main(void) { return x; }"), server=server)
    assert done.returncode == exit_codes.COMPILE_ERROR
    assert "error" in done.stderr and "undeclared" in done.stderr
    assert done.stderr.endswith("coderunner: compile error\n")


def test_a_timeout_exits_124(server: Client, tmp_path: Path) -> None:
    program = write(tmp_path, "spin.py", 'print("started", flush=True)\nwhile True: pass')
    done = coderunner_run(program, "--timeout", "1", server=server)
    assert done.returncode == exit_codes.TIMED_OUT
    assert done.stdout == "started\n"
    assert done.stderr == "coderunner: timed out after 1 s\n"


def test_ctrl_c_kills_the_run_and_exits_130(server: Client, tmp_path: Path) -> None:
    program = write(tmp_path, "loop.py", 'import time\nprint("ready", flush=True)\ntime.sleep(60)')
    command = [sys.executable, "-m", "coderunner", "run", "--server", server.base, program]
    with subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == exit_codes.ABORTED
    assert stderr == "coderunner: aborted\n"


def test_l_overrides_the_extension(server: Client, tmp_path: Path) -> None:
    done = coderunner_run(
        "-l", "bash", write(tmp_path, "script.txt", "echo $((6*7))"), server=server
    )
    assert (done.returncode, done.stdout) == (0, "42\n")


def test_an_unknown_extension_is_a_usage_error(tmp_path: Path) -> None:
    done = coderunner_run(write(tmp_path, "notes.txt", ""), server="http://127.0.0.1:9")
    assert done.returncode == exit_codes.USAGE
    assert done.stderr.startswith("coderunner: cannot tell the language of")
    assert done.stderr.count("\n") == 1


def test_a_bad_flag_is_a_usage_error(tmp_path: Path) -> None:
    done = coderunner_run(write(tmp_path, "a.py", ""), "--bogus", server="http://127.0.0.1:9")
    assert done.returncode == exit_codes.USAGE and "--bogus" in done.stderr


def test_an_unreachable_server_exits_69(tmp_path: Path) -> None:
    server = f"http://127.0.0.1:{free_port()}"
    done = coderunner_run(write(tmp_path, "a.py", "print(1)"), server=server)
    assert done.returncode == exit_codes.UNAVAILABLE
    assert done.stderr.startswith("coderunner: cannot reach ws://127.0.0.1:")
    assert done.stderr.count("\n") == 1


def test_a_terminals_lines_are_forwarded_and_ctrl_d_ends_the_input(
    server: Client, tmp_path: Path
) -> None:
    program = 'import sys\nprint("ready", flush=True)\nprint(sys.stdin.read().upper(), end="")'
    command = [sys.executable, "-m", "coderunner", "run", "--server", server.base]
    out = tmp_path / "out"
    master, slave = os.openpty()
    try:
        with (
            out.open("wb") as sink,
            subprocess.Popen(
                [*command, write(tmp_path, "up.py", program)], stdin=slave, stdout=sink
            ) as proc,
        ):
            _wait_for(out, b"ready")
            os.write(master, b"one\ntwo\n\x04")
            assert proc.wait(30) == 0
    finally:
        os.close(master)
        os.close(slave)
    assert out.read_bytes() == b"ready\nONE\nTWO\n"


def test_tty_on_a_terminal_is_raw_and_restored(server: Client, tmp_path: Path) -> None:
    """Keystrokes go to the program's terminal as typed (it echoes them), and the local
    terminal's settings are back when the command ends."""
    program = write(
        tmp_path, "tty.py", 'import sys\nprint(sys.stdin.isatty())\nprint("got", input())'
    )
    command = [sys.executable, "-m", "coderunner", "run", "--server", server.base, "--tty", program]
    out = tmp_path / "out"
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    try:
        with out.open("wb") as sink, subprocess.Popen(command, stdin=slave, stdout=sink) as proc:
            _wait_for(out, b"True")
            assert not termios.tcgetattr(slave)[3] & termios.ECHO  # raw: no local echo
            os.write(master, b"hello\r")
            assert proc.wait(30) == 0
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
    assert out.read_bytes() == b"True\r\nhello\r\ngot hello\r\n"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """`coderunner api` with API keys and a rate of one run per user, and no worker: what
    these tests check is decided before a run would be queued."""
    log = tmp_path_factory.mktemp("keyed") / "api.log"
    port = free_port()
    env = {"api_keys": "k-ok:ok,k-rate:rate", "rate_burst": "1", "rate_per_s": "0.01"}
    with EmbeddedRedis() as redis:
        proc = start("api", log, redis_url=redis.url, port=str(port), **env)
        client = Client(f"http://127.0.0.1:{port}")
        try:
            client.wait_ready(proc)
            yield client
        finally:
            assert stop(proc) == 0, f"see {log}"


def test_a_missing_or_wrong_key_exits_77(keyed: Client, tmp_path: Path) -> None:
    program = write(tmp_path, "a.py", "print(1)")
    for extra in ([], ["--token", "wrong"]):
        done = coderunner_run(program, *extra, server=keyed)
        assert done.returncode == exit_codes.UNAUTHORIZED, done
        assert done.stderr.startswith("coderunner: unauthorized (close code 4401")


def test_a_right_key_gets_past_the_check(keyed: Client, tmp_path: Path) -> None:
    """Past the key check, the server refuses the memory limit: a usage error, not 77."""
    program = write(tmp_path, "a.py", "print(1)")
    done = coderunner_run("-l", "python", program, "--token", "k-ok", "--memory", "1", server=keyed)
    assert done.returncode == exit_codes.USAGE, done
    assert done.stderr.startswith("coderunner: invalid_field: memory_mb must be")


def test_a_rate_limited_run_exits_75_with_the_retry_delay(keyed: Client, tmp_path: Path) -> None:
    program = write(tmp_path, "a.py", "print(1)")
    env = {**os.environ, "CODERUNNER_TOKEN": "k-rate"}
    command = [sys.executable, "-m", "coderunner", "run", "--server", keyed.base, program]
    first = subprocess.run([*command, "--memory", "1"], env=env, capture_output=True, text=True)
    assert first.returncode == exit_codes.USAGE, first  # $CODERUNNER_TOKEN was taken
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == exit_codes.TRY_LATER, done
    assert done.stderr.startswith("coderunner: rate_limited: ")
    assert "; retry after " in done.stderr and done.stderr.count("\n") == 1


def _wait_for(path: Path, text: bytes, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in path.read_bytes():
        assert time.monotonic() < deadline, path.read_bytes()
        time.sleep(0.02)
