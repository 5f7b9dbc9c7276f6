"""HTTP/1.1 to the Docker engine's unix socket, natively async: no threads, no SDK.

The warm path creates, starts, attaches and removes containers all the time; doing it here
instead of in SDK calls on worker threads keeps those threads from competing with the event
loop (and the programs' output) for the interpreter lock.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from anyio.abc import ByteStream


class EngineError(RuntimeError):
    """The Docker engine failed or could not be reached."""


class NotFound(EngineError):
    """The engine answered 404: no such container or image."""


def _head(method: str, path: str, body: bytes | None, upgrade: bool) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: docker"]
    lines += ["Connection: Upgrade", "Upgrade: tcp"] if upgrade else ["Connection: close"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _connect(socket_path: str) -> ByteStream:
    try:
        return await anyio.connect_unix(socket_path)
    except OSError as exc:
        raise EngineError(f"no docker engine at unix://{socket_path}: {exc}") from exc


async def _read_head(stream: ByteStream) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-cased headers, and whatever followed the headers."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            buf += await stream.receive()
        except anyio.EndOfStream:
            raise EngineError("the docker engine closed the connection mid-response") from None
    head, _, rest = buf.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, rest


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += body[:size]
        body = body[size + 2 :]
    return bytes(out)


async def request(socket_path: str, method: str, path: str, payload: Any = None) -> Any:
    """One request on its own connection; the decoded JSON body (or None when empty)."""
    body = None if payload is None else json.dumps(payload).encode()
    stream = await _connect(socket_path)
    try:
        await stream.send(_head(method, path, body, upgrade=False) + (body or b""))
        status, headers, rest = await _read_head(stream)
        chunks = [rest]
        while True:
            try:
                chunks.append(await stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
    finally:
        await stream.aclose()
    data = b"".join(chunks)
    if headers.get("transfer-encoding") == "chunked":
        data = _dechunk(data)
    decoded = json.loads(data) if data.strip() and data.lstrip()[:1] in (b"{", b"[") else None
    if status >= 400:
        message = (
            decoded.get("message") if isinstance(decoded, dict) else data.decode(errors="replace")
        )
        error = NotFound if status == 404 else EngineError
        raise error(f"{method} {path.split('?')[0]}: {status} {message}")
    return decoded


async def upgrade(socket_path: str, path: str) -> tuple[ByteStream, bytes]:
    """A hijacked connection (attach): the raw stream and what already followed the headers."""
    stream = await _connect(socket_path)
    try:
        await stream.send(_head("POST", path, None, upgrade=True))
        status, _, rest = await _read_head(stream)
        if status not in (101, 200):
            raise EngineError(f"attach failed: HTTP {status}")
        return stream, rest
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
        raise
