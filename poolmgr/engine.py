"""The one adapter to the Docker engine: the handful of calls the pool needs, all async.

Everything goes over the engine's unix socket with `engine_http` (no SDK, no threads), and
an attached container is an async byte stream: stdin in, multiplexed stdout/stderr out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import anyio
from anyio.abc import ByteStream

from poolmgr import engine_http
from poolmgr.engine_http import EngineError, NotFound

log = logging.getLogger(__name__)

STDOUT, STDERR = 1, 2
_MUX_HEADER = 8


class AttachedStream:
    """A container's attached stdin (write) and multiplexed stdout/stderr (read)."""

    def __init__(self, stream: ByteStream, initial: bytes) -> None:
        self._stream = stream
        self._buf = bytearray(initial)
        self.closed = False

    async def send(self, data: bytes) -> None:
        await self._stream.send(data)

    async def chunks(self) -> AsyncIterator[tuple[int, bytes]]:
        """Yield `(STDOUT | STDERR, payload)` until the container's output ends."""
        while True:
            while len(self._buf) >= _MUX_HEADER:
                size = int.from_bytes(self._buf[4:8], "big")
                end = _MUX_HEADER + size
                if len(self._buf) < end:
                    break
                kind, payload = self._buf[0], bytes(self._buf[_MUX_HEADER:end])
                del self._buf[:end]
                yield kind, payload
            try:
                self._buf += await self._stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.closed = True
                return

    async def wait_closed(self) -> None:
        """Buffer anything that arrives until the stream ends; an idle agent says nothing."""
        while not self.closed:
            try:
                self._buf += await self._stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.closed = True

    async def aclose(self) -> None:
        self.closed = True
        await self._stream.aclose()


class Engine:
    """The Docker engine API, as the pool uses it."""

    def __init__(self, docker_url: str) -> None:
        if not docker_url.startswith("unix://"):
            raise EngineError(f"only unix:// docker URLs are supported, got {docker_url!r}")
        self._socket = docker_url.removeprefix("unix://")

    async def _call(self, method: str, path: str, payload: Any = None) -> Any:
        return await engine_http.request(self._socket, method, path, payload)

    async def ping(self) -> bool:
        try:
            await self._call("GET", "/_ping")
        except EngineError:
            return False
        return True

    async def create(self, config: dict[str, Any]) -> str:
        """Create a container from an API-format config; its id."""
        created = await self._call("POST", "/containers/create", config)
        return str(created["Id"])

    async def start(self, container_id: str) -> None:
        await self._call("POST", f"/containers/{quote(container_id)}/start")

    async def remove(self, container_id: str) -> None:
        """Kill and remove; a container that is already gone (or going) is fine."""
        try:
            await self._call("DELETE", f"/containers/{quote(container_id)}?force=1&v=1")
        except NotFound:
            pass
        except EngineError as exc:
            if "already in progress" not in str(exc):
                raise

    async def set_memory(self, container_id: str, memory_mb: int) -> None:
        limit = memory_mb * 1024 * 1024
        update = {"Memory": limit, "MemorySwap": limit}
        await self._call("POST", f"/containers/{quote(container_id)}/update", update)

    async def inspect(self, container_id: str) -> dict[str, Any]:
        info: dict[str, Any] = await self._call("GET", f"/containers/{quote(container_id)}/json")
        return info

    async def list_labelled(self, labels: dict[str, str]) -> dict[str, dict[str, str]]:
        """`{id: labels}` of all containers (running or not) carrying these labels."""
        wanted = [f"{k}={v}" if v else k for k, v in labels.items()]
        filters = quote(json.dumps({"label": wanted}))
        found = await self._call("GET", f"/containers/json?all=1&filters={filters}")
        return {str(c["Id"]): dict(c.get("Labels") or {}) for c in found}

    async def list_ids(self, labels: dict[str, str]) -> list[str]:
        """Ids of all containers (running or not) carrying these labels."""
        return list(await self.list_labelled(labels))

    async def image_id(self, name: str) -> str | None:
        try:
            info = await self._call("GET", f"/images/{quote(name, safe='')}/json")
        except NotFound:
            return None
        return str(info["Id"])

    async def attach(self, container_id: str) -> AttachedStream:
        """Attach stdin/stdout/stderr; done before start so no output is missed."""
        path = f"/containers/{quote(container_id)}/attach?stream=1&stdin=1&stdout=1&stderr=1"
        stream, rest = await engine_http.upgrade(self._socket, path)
        return AttachedStream(stream, rest)
