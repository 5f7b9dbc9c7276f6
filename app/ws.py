"""`/ws/execution/{id}`: watch one execution's frames live, and type into it or kill it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing

import anyio
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.auth import Caller, identify
from app.client_socket import (
    CLOSE_FORBIDDEN_ORIGIN,
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_TOO_MANY_SOCKETS,
    CLOSE_TRY_AGAIN,
    CLOSE_UNAUTHORIZED,
    CLOSE_UNKNOWN_EXECUTION,
    ClientSocket,
    SlowClient,
    receive_text,
)
from app.commands import Command, parse_command
from app.errors import ApiError
from app.executions import STDIN_CLOSED, STDIN_LIMIT, STDIN_OK, ExecutionStore
from app.sockets import TooManySockets
from app.state import AppState
from app.watch import UnknownExecution, watch_frames

PONG = b'{"type":"pong"}'
DELIVER_LIMIT_S = 5.0


async def accept(ws: WebSocket) -> tuple[ClientSocket, Caller] | None:
    """Accept, then check the key: the socket and the caller, or None once it is
    closed 4401 (a browser cannot read the status of a refused handshake, only a close code)."""
    state = AppState.of(ws)
    await ws.accept()
    sock = ClientSocket(ws, state.settings.ws_send_timeout_s)
    if not _origin_allowed(ws, state.settings.cors_origins):
        await sock.close(CLOSE_FORBIDDEN_ORIGIN, "this origin may not open WebSockets here")
        return None
    try:
        caller = identify(ws, state.settings.api_keys)
    except ApiError as exc:
        await sock.close(CLOSE_UNAUTHORIZED, exc.message)
        return None
    return sock, caller


def _origin_allowed(ws: WebSocket, allowed: tuple[str, ...]) -> bool:
    """Browsers send `Origin` on WebSockets and apply no same-origin rule to them: without
    this check any page a user visits could run code through their (open, or cookie-less
    but reachable) service and read the output. Non-browser clients send no Origin."""
    origin = ws.headers.get("origin")
    if origin is None or origin in allowed:
        return True
    host = ws.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def until_shutdown(
    state: AppState, scope: anyio.CancelScope, ended: list[tuple[int, str]]
) -> None:
    """Cancel `scope` with 1001 when the server starts shutting down."""
    await state.closing.wait()
    ended.append((CLOSE_GOING_AWAY, "server shutting down"))
    scope.cancel()


async def _carry_out(store: ExecutionStore, execution_id: str, command: Command) -> str:
    """Abort, or queue the stdin message: the store's reply (STDIN_OK... for stdin).

    Shielded: a command the client sent is carried out even when its socket closes right
    after it (an editor's Stop, then the tab closes), within DELIVER_LIMIT_S."""
    reply = STDIN_OK
    try:
        with anyio.CancelScope(shield=True), anyio.fail_after(DELIVER_LIMIT_S):
            if command.kind == "kill":
                record = await store.get(execution_id)
                if record is not None:
                    await store.abort(record)
            else:
                reply = await store.send_stdin(
                    execution_id, command.message, command.size, command.eof
                )
    except TimeoutError:
        raise RedisTimeoutError(f"a {command.kind} frame took over {DELIVER_LIMIT_S} s") from None
    return reply


async def deliver(
    sock: ClientSocket, store: ExecutionStore, execution_id: str, command: Command, limit: int
) -> None:
    """Carry out a stdin or kill command for the execution; a refused stdin gets an error."""
    reply = await _carry_out(store, execution_id, command)
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


async def execution_socket(ws: WebSocket) -> None:
    """Status, every output frame (replayed, then live), exit, close."""
    accepted = await accept(ws)
    if accepted is None:
        return
    sock, _ = accepted
    state = AppState.of(ws)
    execution_id = ws.path_params["execution_id"]
    await held(sock, state, execution_id, lambda: _watch(sock, state, execution_id))


async def held(
    sock: ClientSocket,
    state: AppState,
    execution_id: str | None,
    serve: Callable[[], Awaitable[tuple[int, str]]],
) -> None:
    """Serve the socket while it counts toward the socket caps (of one execution's
    watchers unless `execution_id` is None), then close it with the code `serve` ends with;
    1008 when a cap is reached."""
    client = sock.ws.client.host if sock.ws.client else ""
    try:
        with state.sockets.hold(execution_id, client):
            code, reason = await serve()
    except TooManySockets as exc:
        code, reason = CLOSE_TOO_MANY_SOCKETS, exc.reason
    await sock.close(code, reason)


async def _watch(sock: ClientSocket, state: AppState, execution_id: str) -> tuple[int, str]:
    """Send the frames until the end or a disconnect; the close code and reason."""
    ended: list[tuple[int, str]] = []
    frames: AsyncGenerator[bytes] = watch_frames(state.snapshots, state.relay, execution_id)
    async with anyio.create_task_group() as tg, aclosing(frames):
        tg.start_soon(until_shutdown, state, tg.cancel_scope, ended)
        tg.start_soon(_until_disconnect, sock, state, execution_id, tg.cancel_scope, ended)
        try:
            async for raw in frames:
                await sock.send(raw)
            ended.append((CLOSE_NORMAL, ""))
        except UnknownExecution:
            ended.append((CLOSE_UNKNOWN_EXECUTION, f"no execution {execution_id}"))
        except (RedisError, SlowClient, WebSocketDisconnect, RuntimeError) as exc:
            ended.append(ending(exc))
        tg.cancel_scope.cancel()
    return ended[0] if ended else (CLOSE_NORMAL, "")


def ending(exc: Exception) -> tuple[int, str]:
    """The close code and reason for what ended a socket early."""
    if isinstance(exc, SlowClient):
        return CLOSE_TRY_AGAIN, f"client too slow ({exc}); reconnect to resume"
    if isinstance(exc, RedisError):
        return CLOSE_TRY_AGAIN, "the queue (Redis) is unreachable; reconnect to resume"
    return CLOSE_NORMAL, ""


async def _until_disconnect(
    sock: ClientSocket,
    state: AppState,
    execution_id: str,
    scope: anyio.CancelScope,
    ended: list[tuple[int, str]],
) -> None:
    """Client frames while the execution runs: stdin reaches the program, kill aborts it."""
    limit = state.settings.max_stdin_bytes
    killed = False
    try:
        while True:
            text = await receive_text(sock.ws, sock)
            if text is None:
                continue
            command = parse_command(text, limit)
            if command.kind == "kill" and killed:
                continue  # one kill is enough; more would only queue more messages
            if command.kind in ("stdin", "kill") and await sock.within_budget():
                killed = killed or command.kind == "kill"
                await deliver(sock, state.store, execution_id, command, limit)
            elif command.kind == "ping":
                await sock.send(PONG)
            elif command.kind not in ("stdin", "kill"):
                problem = command.problem or "a run is started on /ws/run, not here"
                await sock.error("invalid_message", problem)
    except (WebSocketDisconnect, RuntimeError, RedisError, SlowClient) as exc:
        ended.append(ending(exc))  # RuntimeError: starlette's "the socket is closed"
        scope.cancel()


routes = [WebSocketRoute("/ws/execution/{execution_id}", execution_socket)]
