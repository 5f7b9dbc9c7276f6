"""`/ws/run`: one editor socket, many runs in sequence, each frame tagged with its run."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from app.commands import Command
from app.ws import deliver
from tests.client import Client


def _open(server: Client) -> ClientConnection:
    return connect(f"{server.ws_base}/ws/run", open_timeout=10)


def _send(socket: ClientConnection, **frame: Any) -> None:
    socket.send(json.dumps(frame))


def _recv(socket: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(socket.recv(timeout=30))
    return frame


def _until_exit(socket: ClientConnection) -> list[dict[str, Any]]:
    frames = [_recv(socket)]
    while frames[-1]["type"] not in ("exit", "error"):
        frames.append(_recv(socket))
    return frames


def _run(socket: ClientConnection, code: str, **body: Any) -> list[dict[str, Any]]:
    _send(socket, type="run", language="python", code=code, **body)
    return _until_exit(socket)


def test_runs_in_sequence_on_one_socket(server: Client) -> None:
    """Each run starts the moment the previous exit frame arrives: never refused as busy."""
    with _open(server) as socket:
        ids = set()
        for i in range(12):
            frames = _run(socket, f"print({i})")
            accepted, *rest = frames
            assert accepted["type"] == "accepted", accepted
            assert {f["execution_id"] for f in rest} == {accepted["execution_id"]}
            assert [f["data"] for f in rest if f["type"] == "stdout"] == [f"{i}\n"]
            assert rest[-1]["status"] == "completed"
            ids.add(accepted["execution_id"])
        assert len(ids) == 12


def test_stdin_eof_and_exit_code(server: Client) -> None:
    code = (
        "import sys\nname = input()\nprint('hi', name)\nprint(repr(sys.stdin.read()))\nsys.exit(3)"
    )
    with _open(server) as socket:
        _send(socket, type="run", language="python", code=code, interactive=True)
        # Typed at once, before `accepted`: held until the run is queued, kept in order.
        _send(socket, type="stdin", data="ada\n")
        _send(socket, type="stdin", data="more")
        _send(socket, type="stdin", eof=True)
        frames = _until_exit(socket)
    stdout = "".join(f["data"] for f in frames if f["type"] == "stdout")
    assert stdout == "hi ada\n'more'\n"
    assert frames[-1]["exit_code"] == 3


def test_kill_stops_the_run_and_the_socket_goes_on(server: Client) -> None:
    with _open(server) as socket:
        _send(socket, type="run", language="python", code="while True: pass")
        accepted = _recv(socket)
        while _recv(socket).get("status") != "running":
            pass
        _send(socket, type="run", language="python", code="print(2)")
        refused = _recv(socket)
        assert refused["type"] == "error" and refused["code"] == "run_in_progress"
        _send(socket, type="kill")
        frames = _until_exit(socket)
        assert frames[-1]["status"] == "aborted"
        assert frames[-1]["execution_id"] == accepted["execution_id"]
        assert _run(socket, "print('after')")[-1]["status"] == "completed"


def test_bad_frames_get_errors_and_the_socket_stays_open(server: Client) -> None:
    with _open(server) as socket:
        socket.send("not json")
        assert _recv(socket)["code"] == "invalid_message"
        socket.send(b"\x00binary")
        assert _recv(socket)["code"] == "invalid_message"
        _send(socket, type="launch")
        assert _recv(socket)["code"] == "invalid_message"
        _send(socket, type="stdin", data="x")
        assert _recv(socket)["code"] == "no_run"
        _send(socket, type="run", language="cobol", code="x")
        error = _recv(socket)
        assert (error["code"], error["field"]) == ("invalid_field", "language")
        _send(socket, type="run", language="python", code="1", timeout_s=99)
        assert _recv(socket)["field"] == "timeout_s"
        _send(socket, type="run", language="python", code="#" * (4 * 1024 * 1024 + 10))
        assert _recv(socket)["code"] == "request_too_large"  # as over HTTP (it was accepted)
        _send(socket, type="run", language="x" * 10_000, code="1")
        assert len(_recv(socket)["message"]) < 300  # the input is not echoed whole
        _send(socket, type="ping")
        assert _recv(socket) == {"type": "pong"}
        assert _run(socket, "print('fine')")[-1]["status"] == "completed"


def test_a_run_goes_on_when_its_socket_closes(server: Client) -> None:
    with _open(server) as socket:
        _send(
            socket, type="run", language="python", code="import time; time.sleep(1); print('done')"
        )
        execution_id = _recv(socket)["execution_id"]
    deadline = time.monotonic() + 30
    while (body := server.request("GET", f"/api/v1/execution/{execution_id}").body)[
        "status"
    ] not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert body["status"] == "completed" and body["stdout"] == "done\n"
    # Its frames can still be read by reconnecting.
    watched = server.watch(execution_id)
    assert watched.text() == "done\n" and watched.close_code == 1000


@pytest.mark.anyio
async def test_a_command_is_carried_out_when_its_socket_is_torn_down() -> None:
    """An editor's Stop and then its tab closing: the socket's tasks are cancelled while
    the kill is on its way to Redis; the kill must still happen (it was lost)."""
    aborted: list[str] = []

    class SlowStore:
        async def get(self, execution_id: str) -> Any:
            await anyio.sleep(0.1)
            return SimpleNamespace(execution_id=execution_id)

        async def abort(self, record: Any) -> str:
            aborted.append(record.execution_id)
            return "kill-sent"

    store: Any = SlowStore()
    sock: Any = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(deliver, sock, store, "e1", Command("kill"), 10)
        await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert aborted == ["e1"]


def test_a_page_of_another_origin_may_not_open_a_socket(server: Client) -> None:
    """Browsers apply no same-origin rule to WebSockets: without a check, any page a user
    visits could run code through their service and read the output (it could)."""
    url = f"{server.ws_base}/ws/run"
    with connect(url, origin="https://evil.example", open_timeout=10) as socket:  # type: ignore[arg-type]
        try:
            socket.recv(timeout=10)
            raise AssertionError("the socket stayed open")
        except ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code == 4403
    own = server.ws_base.replace("ws://", "http://")
    with connect(url, origin=own, open_timeout=10) as socket:  # type: ignore[arg-type]
        assert _run(socket, "print('same origin')")[-1]["status"] == "completed"
