"""The core path end to end: HTTP -> Redis stream -> worker -> warm container -> WebSocket."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.client import Client


def test_hello_world(server: Client) -> None:
    result = server.run(code="print('hello, world')")
    assert result["status"] == "completed"
    assert result["exit_code"] == 0
    assert result["stdout"] == "hello, world\n"
    assert result["stderr"] == ""
    assert result["start"] in ("warm", "cold")
    assert set(result["timings"]) == {"queue_ms", "start_ms", "compile_ms", "run_ms", "total_ms"}


def test_stdin_reaches_the_program(server: Client) -> None:
    result = server.run(code="print(input()[::-1])\nprint(input())", stdin="olleh\nsecond\n")
    assert result["stdout"] == "hello\nsecond\n"


def test_non_zero_exit_code(server: Client) -> None:
    result = server.run(code="import sys\nsys.exit(3)")
    assert (result["status"], result["exit_code"]) == ("completed", 3)


def test_uncaught_exception_is_a_traceback_on_stderr(server: Client) -> None:
    result = server.run(code="print('before')\nraise ValueError('boom')")
    assert result["exit_code"] == 1
    assert result["stdout"] == "before\n"
    assert 'File "/workspace/main.py", line 2' in result["stderr"]
    assert result["stderr"].rstrip().endswith("ValueError: boom")
    assert "agent.py" not in result["stderr"]


def test_stderr_and_stdout_are_separate(server: Client) -> None:
    code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\nprint('out2')"
    result = server.run(code=code)
    assert result["stdout"] == "out\nout2\n"
    assert result["stderr"] == "err\n"


def test_websocket_frames_follow_the_contract(server: Client) -> None:
    execution_id = server.submit(code="import sys\nprint('a')\nprint('b', file=sys.stderr)")
    watched = server.watch(execution_id)
    assert watched.frames[0]["type"] == "status"
    assert [f["seq"] for f in watched.output] == list(range(len(watched.output)))
    assert watched.text("stdout") == "a\n" and watched.text("stderr") == "b\n"
    assert watched.exit["status"] == "completed" and watched.exit["exit_code"] == 0
    assert watched.exit["start"] in ("warm", "cold")
    assert watched.close_code == 1000
    statuses = [f["status"] for f in watched.frames if f["type"] == "status"]
    order = ["queued", "preparing", "running", "completed"]
    assert [order.index(s) for s in statuses] == sorted(order.index(s) for s in statuses)


def test_two_thousand_lines_arrive_in_order(server: Client) -> None:
    execution_id = server.submit(code="for i in range(2000):\n    print(i)")
    watched = server.watch(execution_id)
    assert watched.text() == "".join(f"{i}\n" for i in range(2000))
    assert [f["seq"] for f in watched.output] == list(range(len(watched.output)))


def test_late_websocket_gets_all_output(server: Client) -> None:
    execution_id = server.submit(code="for i in range(300):\n    print('line', i)")
    result = server.request("GET", f"/api/v1/execution/{execution_id}")
    while result.body["status"] not in ("completed", "failed"):
        result = server.request("GET", f"/api/v1/execution/{execution_id}")
    watched = server.watch(execution_id)
    assert watched.frames[0] == {"type": "status", "status": "completed"}
    assert watched.text() == "".join(f"line {i}\n" for i in range(300))
    assert watched.exit["exit_code"] == 0


def test_two_watchers_see_the_same_frames(server: Client) -> None:
    execution_id = server.submit(
        code="import time\nfor i in range(5):\n    print(i)\n    time.sleep(0.05)"
    )
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(server.watch, [execution_id, execution_id])
    assert first.output == second.output
    assert first.text() == "0\n1\n2\n3\n4\n"


def test_ten_concurrent_executions(server: Client) -> None:
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda i: server.run(code=f"print({i} * {i})"), range(10)))
    assert [r["stdout"] for r in results] == [f"{i * i}\n" for i in range(10)]
    assert all(r["status"] == "completed" for r in results)
    assert len({r["execution_id"] for r in results}) == 10


def test_multi_file_program(server: Client) -> None:
    files = [
        {"name": "main.py", "content": "from lib.greet import hi\nhi()"},
        {"name": "lib/__init__.py", "content": ""},
        {"name": "lib/greet.py", "content": "def hi():\n    print('hi from a module')"},
    ]
    assert server.run(files=files)["stdout"] == "hi from a module\n"


def test_args_reach_argv(server: Client) -> None:
    result = server.run(code="import sys\nprint(sys.argv[1:])", args=["a", "b c"])
    assert result["stdout"] == "['a', 'b c']\n"


def test_get_result_and_unknown_id(server: Client) -> None:
    execution_id = server.submit(code="print(1)")
    server.watch(execution_id)
    reply = server.request("GET", f"/api/v1/execution/{execution_id}")
    assert reply.status == 200 and reply.body["stdout"] == "1\n"
    missing = server.request("GET", "/api/v1/execution/nope")
    assert missing.status == 404 and missing.body["error"]["code"] == "not_found"


def test_unknown_execution_websocket_closes_4004(server: Client) -> None:
    assert server.watch("does-not-exist").close_code == 4004
