"""One accepted WebSocket as the endpoints use it: serialised sends with a deadline, error
frames, and the close codes of the contract."""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any

import anyio
import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # the server is shutting down
CLOSE_TOO_MANY_SOCKETS = 1008
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN = 1013  # Redis unreachable, or a client too slow to read its frames
CLOSE_UNKNOWN_EXECUTION = 4004
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403  # a browser page of another origin (see CODERUNNER_CORS_ORIGINS)
CLOSE_RATE_LIMITED = 4429

CLOSE_GRACE_S = 1.0
FRAMES_PER_S = 200  # stdin and kill frames per socket: far above typing, far below a flood
FRAME_BURST = 400


class SlowClient(Exception):
    """The client has not taken a frame within the send deadline: its connection's buffers
    are full, and waiting longer would only hold server resources for it."""


class ClientSocket:
    """Sends are serialised (several tasks write) and bounded in time: a client that does not
    read blocks a send once its connection's buffers are full (uvicorn pauses writing above
    its high-water mark), so the server holds at most those buffers plus one frame for it,
    and drops it after `send_timeout_s`."""

    def __init__(self, ws: WebSocket, send_timeout_s: float) -> None:
        self.ws = ws
        self._timeout = send_timeout_s
        self._lock = anyio.Lock()
        self._tokens = float(FRAME_BURST)
        self._refilled = time.monotonic()

    async def within_budget(self) -> bool:
        """Take one of this socket's tokens for a stdin or kill frame (each costs Redis a
        script); False, with an error frame sent, once it sends faster than FRAMES_PER_S."""
        now = time.monotonic()
        self._tokens = min(FRAME_BURST, self._tokens + (now - self._refilled) * FRAMES_PER_S)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        await self.error(
            "rate_limited",
            f"too many frames: at most {FRAMES_PER_S} stdin or kill frames a second;"
            " this one was dropped",
        )
        return False

    async def send(self, raw: bytes) -> None:
        try:
            with anyio.fail_after(self._timeout):
                async with self._lock:
                    await self.ws.send_text(raw.decode())
        except TimeoutError:
            raise SlowClient(f"no frame taken for {self._timeout:g} s") from None

    async def send_json(self, frame: dict[str, Any]) -> None:
        await self.send(orjson.dumps(frame))

    async def error(self, code: str, message: str, **extra: Any) -> None:
        await self.send_json({"type": "error", "code": code, "message": message, **extra})

    async def close(self, code: int, reason: str = "") -> None:
        """Close if still open; a client that reads nothing may never take the close frame,
        so this gives up after CLOSE_GRACE_S and lets the server drop the connection."""
        if self.ws.client_state != WebSocketState.CONNECTED:
            return
        with (
            anyio.move_on_after(CLOSE_GRACE_S),
            suppress(WebSocketDisconnect, RuntimeError, OSError),
        ):
            await self.ws.close(code, reason[:120])


async def receive_text(ws: WebSocket, sock: ClientSocket) -> str | None:
    """The next text frame; None for a binary one (answered with an error frame).
    WebSocketDisconnect when the client has gone."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None:
        await sock.error("invalid_message", "frames must be JSON text, not binary")
    return text if isinstance(text, str) else None
