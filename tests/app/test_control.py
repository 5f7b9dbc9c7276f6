"""Abort (DELETE and WebSocket kill) and interactive stdin, against the real service."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from tests.client import Client

SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(60)"


def _wait_status(server: Client, execution_id: str, wanted: str, limit_s: float = 20) -> None:
    deadline = time.monotonic() + limit_s
    while server.request("GET", f"/api/v1/execution/{execution_id}").body["status"] != wanted:
        assert time.monotonic() < deadline, f"never reached {wanted}"
        time.sleep(0.05)


def test_delete_aborts_a_running_execution_within_a_second(server: Client) -> None:
    execution_id = server.submit(code=SLEEPER, timeout_s=30)
    _wait_status(server, execution_id, "running")
    started = time.monotonic()
    reply = server.request("DELETE", f"/api/v1/execution/{execution_id}")
    assert time.monotonic() - started < 1.0
    assert reply.status == 200 and reply.body["status"] == "aborted"
    assert server.watch(execution_id).exit["status"] == "aborted"
    again = server.request("DELETE", f"/api/v1/execution/{execution_id}")
    assert again.status == 409 and again.body["error"]["code"] == "already_finished"


def test_delete_aborts_a_queued_execution(server: Client) -> None:
    # Fill the worker's 8 slots, so the next one stays queued.
    busy = [server.submit(code=SLEEPER, timeout_s=30) for _ in range(8)]
    for execution_id in busy:
        _wait_status(server, execution_id, "running")
    queued = server.submit(code="print('never')")
    time.sleep(0.3)
    assert server.request("GET", f"/api/v1/execution/{queued}").body["status"] == "queued"
    reply = server.request("DELETE", f"/api/v1/execution/{queued}")
    assert reply.status == 200 and reply.body["status"] == "aborted"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda e: server.request("DELETE", f"/api/v1/execution/{e}"), busy))
    time.sleep(0.5)  # a free worker now reads the aborted job and must not run it
    result = server.request("GET", f"/api/v1/execution/{queued}").body
    assert result["status"] == "aborted" and result["stdout"] == ""


def test_delete_unknown_is_404(server: Client) -> None:
    assert server.request("DELETE", "/api/v1/execution/nope").status == 404


def test_websocket_kill_aborts(server: Client) -> None:
    execution_id = server.submit(code=SLEEPER, timeout_s=30)
    with server.socket(execution_id) as ws:
        while json.loads(ws.recv(timeout=20)).get("data") != "started\n":
            pass
        ws.send(json.dumps({"type": "kill"}))
        frames = [json.loads(raw) for raw in ws]
    assert frames[-1]["type"] == "exit" and frames[-1]["status"] == "aborted"


def test_interactive_stdin_reaches_the_program_like_a_terminal(server: Client) -> None:
    code = (
        "import sys\n"
        "for line in sys.stdin:\n"
        "    print(line.strip().upper(), flush=True)\n"
        "print('bye')"
    )
    execution_id = server.submit(code=code, interactive=True, stdin="first\n")
    with server.socket(execution_id) as ws:
        seen = ""
        for word, reply in (("", "FIRST\n"), ("second\n", "SECOND\n"), ("third\n", "THIRD\n")):
            if word:
                ws.send(json.dumps({"type": "stdin", "data": word}))
            while reply not in seen:
                frame = json.loads(ws.recv(timeout=20))
                seen += frame.get("data", "") if frame["type"] == "stdout" else ""
        ws.send(json.dumps({"type": "stdin", "eof": True}))
        frames = [json.loads(raw) for raw in ws]
    assert "bye\n" in "".join(f.get("data", "") for f in frames)
    assert frames[-1]["status"] == "completed" and frames[-1]["exit_code"] == 0


def test_invalid_client_frames_get_an_error_frame_not_a_close(server: Client) -> None:
    execution_id = server.submit(code="import time\ntime.sleep(1)\nprint('ok')")
    with server.socket(execution_id) as ws:
        ws.send("not json")
        ws.send(json.dumps({"type": "dance"}))
        ws.send(b"\x00binary")
        frames = [json.loads(raw) for raw in ws]
    errors = [f for f in frames if f["type"] == "error"]
    assert len(errors) == 3 and all(e["code"] == "invalid_message" for e in errors)
    assert frames[-1]["type"] == "exit" and frames[-1]["status"] == "completed"
