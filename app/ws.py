"""WebSocket endpoints: watch one execution's frames live, and type into it or kill it."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing, suppress
from dataclasses import dataclass
from typing import Literal

import anyio
import orjson
from redis.exceptions import RedisError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from app.executions import STDIN_CLOSED, STDIN_LIMIT, STDIN_OK, ExecutionStore
from app.sockets import TooManySockets
from app.state import AppState
from app.watch import UnknownExecution, watch_frames

CLOSE_NORMAL = 1000
CLOSE_TOO_MANY_SOCKETS = 1008
CLOSE_TRY_AGAIN = 1013
CLOSE_UNKNOWN_EXECUTION = 4004


class _Socket:
    """One client socket; sends are serialised because two tasks write to it."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self._lock = anyio.Lock()

    async def send(self, raw: bytes) -> None:
        async with self._lock:
            await self.ws.send_text(raw.decode())

    async def error(self, code: str, message: str) -> None:
        await self.send(orjson.dumps({"type": "error", "code": code, "message": message}))


@dataclass(frozen=True)
class Command:
    """A parsed client frame: the control message for stdin, or why it was refused."""

    kind: Literal["stdin", "kill", "invalid"]
    message: bytes = b""
    problem: str = ""
    size: int = 0  # bytes of stdin data
    eof: bool = False


def parse_command(raw: str, max_stdin_bytes: int) -> Command:
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Command("invalid", problem="frames must be JSON objects")
    kind = message.get("type") if isinstance(message, dict) else None
    if kind == "kill":
        return Command("kill")
    if kind != "stdin":
        return Command("invalid", problem="expected {'type': 'stdin', ...} or {'type': 'kill'}")
    data, eof = message.get("data"), message.get("eof", False)
    if (data is not None and not isinstance(data, str)) or not isinstance(eof, bool):
        return Command("invalid", problem="stdin takes a string 'data' and/or 'eof': true")
    if not data and not eof:
        return Command("invalid", problem="a stdin frame carries non-empty 'data' or 'eof': true")
    size = len(data.encode()) if data is not None else 0
    if size > max_stdin_bytes:
        return Command("invalid", problem=f"a stdin frame is limited to {max_stdin_bytes} bytes")
    message = orjson.dumps({"type": "stdin", "data": data, "eof": eof})
    return Command("stdin", message, size=size, eof=eof)


async def _send_stdin(
    sock: _Socket, store: ExecutionStore, execution_id: str, command: Command, limit: int
) -> None:
    reply = await store.send_stdin(execution_id, command.message, command.size, command.eof)
    if reply == STDIN_LIMIT:
        await sock.error(
            "stdin_limit",
            f"stdin is limited to {limit} bytes per execution, the request's stdin included;"
            " this frame was not delivered",
        )
    elif reply == STDIN_CLOSED:
        await sock.error("stdin_closed", "stdin is closed: end of stdin was already sent")
    elif reply != STDIN_OK:
        await sock.error("stdin_closed", f"stdin is closed: the execution is {reply}")


async def _commands(sock: _Socket, store: ExecutionStore, execution_id: str, limit: int) -> None:
    """Client frames while the execution runs: stdin reaches the program, kill aborts it."""
    while True:
        message = await sock.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text")
        if text is None:
            await sock.error("invalid_message", "frames must be JSON text, not binary")
            continue
        command = parse_command(text, limit)
        if command.kind == "stdin":
            await _send_stdin(sock, store, execution_id, command, limit)
        elif command.kind == "kill":
            record = await store.get(execution_id)
            if record is not None:
                await store.abort(record)
        else:
            await sock.error("invalid_message", command.problem)


async def execution_socket(ws: WebSocket) -> None:
    """`/ws/execution/{id}`: status, every output frame (replayed, then live), exit, close."""
    state = AppState.of(ws)
    execution_id = ws.path_params["execution_id"]
    await ws.accept()
    reason = ""
    try:
        client = ws.client.host if ws.client else ""
        with state.sockets.hold(execution_id, client):
            code = await _watch(_Socket(ws), state, execution_id)
    except TooManySockets as exc:
        code, reason = CLOSE_TOO_MANY_SOCKETS, exc.reason
    if ws.client_state == WebSocketState.CONNECTED:
        with suppress(WebSocketDisconnect, RuntimeError):
            await ws.close(code, reason)


async def _watch(sock: _Socket, state: AppState, execution_id: str) -> int:
    """Send the frames until the end or a disconnect; the close code."""
    code = CLOSE_NORMAL
    frames: AsyncGenerator[bytes] = watch_frames(state.snapshots, state.relay, execution_id)
    limit = state.settings.max_stdin_bytes
    async with anyio.create_task_group() as tg, aclosing(frames):
        tg.start_soon(_until_disconnect, sock, state.store, execution_id, limit, tg.cancel_scope)
        try:
            async for raw in frames:
                await sock.send(raw)
        except UnknownExecution:
            code = CLOSE_UNKNOWN_EXECUTION
        except RedisError:
            code = CLOSE_TRY_AGAIN
        except WebSocketDisconnect:
            pass
        tg.cancel_scope.cancel()
    return code


async def _until_disconnect(
    sock: _Socket, store: ExecutionStore, execution_id: str, limit: int, scope: anyio.CancelScope
) -> None:
    try:
        await _commands(sock, store, execution_id, limit)
    except (WebSocketDisconnect, RuntimeError, RedisError):
        scope.cancel()


routes = [WebSocketRoute("/ws/execution/{execution_id}", execution_socket)]
