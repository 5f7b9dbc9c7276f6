"""WebSocket endpoints: watch one execution's frames live."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing, suppress

import anyio
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from app.state import AppState
from app.watch import UnknownExecution, watch_frames

CLOSE_NORMAL = 1000
CLOSE_UNKNOWN_EXECUTION = 4004


async def _until_disconnect(ws: WebSocket, scope: anyio.CancelScope) -> None:
    try:
        while True:
            await ws.receive_text()
    except (WebSocketDisconnect, RuntimeError):
        scope.cancel()


async def execution_socket(ws: WebSocket) -> None:
    """`/ws/execution/{id}`: status, every output frame (replayed, then live), exit, close."""
    state = AppState.of(ws)
    await ws.accept()
    code = CLOSE_NORMAL
    frames: AsyncGenerator[bytes] = watch_frames(
        state.store, state.relay, ws.path_params["execution_id"]
    )
    async with anyio.create_task_group() as tg, aclosing(frames):
        tg.start_soon(_until_disconnect, ws, tg.cancel_scope)
        try:
            async for raw in frames:
                await ws.send_text(raw.decode())
        except UnknownExecution:
            code = CLOSE_UNKNOWN_EXECUTION
        except WebSocketDisconnect:
            pass
        tg.cancel_scope.cancel()
    if ws.client_state == WebSocketState.CONNECTED:
        with suppress(WebSocketDisconnect, RuntimeError):
            await ws.close(code)


routes = [WebSocketRoute("/ws/execution/{execution_id}", execution_socket)]
