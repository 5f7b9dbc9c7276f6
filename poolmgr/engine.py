"""The one adapter to the Docker engine.

Blocking docker SDK calls run in worker threads; attaching is done natively with
anyio on the engine's unix socket, so a warm container's stdin/stdout is an async
byte stream with no thread in the way.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any
from urllib.parse import quote

import anyio
import docker
import docker.errors
from anyio.abc import ByteStream

log = logging.getLogger(__name__)

STDOUT, STDERR = 1, 2
_MUX_HEADER = 8


class EngineError(RuntimeError):
    """The Docker engine failed or could not be reached."""


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
    """Async facade over the docker SDK for the handful of calls the pool needs."""

    def __init__(self, docker_url: str) -> None:
        if not docker_url.startswith("unix://"):
            raise EngineError(f"only unix:// docker URLs are supported, got {docker_url!r}")
        self._socket = docker_url.removeprefix("unix://")
        self._url = docker_url
        self._client: docker.DockerClient | None = None

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))
        except docker.errors.NotFound:
            raise
        except (docker.errors.DockerException, OSError) as exc:
            raise EngineError(f"docker engine error: {exc}") from exc

    @property
    def api(self) -> Any:
        """The SDK's low-level client, connected (and version-negotiated) on first use."""
        if self._client is None:
            try:
                self._client = docker.DockerClient(base_url=self._url, version="auto", timeout=60)
            except docker.errors.DockerException as exc:
                raise EngineError(f"no docker engine at {self._url}: {exc}") from exc
        return self._client.api

    async def ping(self) -> bool:
        try:
            await self._call(lambda: self.api.ping())
        except EngineError:
            self._client = None  # reconnect (and re-negotiate the API version) next time
            return False
        return True

    async def create(self, config: dict[str, Any]) -> str:
        api = self.api
        host_config = api.create_host_config(**config.pop("host_config"))
        created = await self._call(api.create_container, host_config=host_config, **config)
        return str(created["Id"])

    async def start(self, container_id: str) -> None:
        await self._call(self.api.start, container_id)

    async def remove(self, container_id: str) -> None:
        """Kill and remove; a container that is already gone is fine."""
        try:
            await self._call(self.api.remove_container, container_id, force=True)
        except docker.errors.NotFound:
            pass
        except EngineError as exc:
            if "already in progress" not in str(exc):
                raise

    async def set_memory(self, container_id: str, memory_mb: int) -> None:
        limit = memory_mb * 1024 * 1024
        await self._call(
            self.api.update_container, container_id, mem_limit=limit, memswap_limit=limit
        )

    async def inspect(self, container_id: str) -> dict[str, Any]:
        info: dict[str, Any] = await self._call(self.api.inspect_container, container_id)
        return info

    async def list_labelled(self, labels: dict[str, str]) -> dict[str, dict[str, str]]:
        """`{id: labels}` of all containers (running or not) carrying these labels."""
        wanted = [f"{k}={v}" if v else k for k, v in labels.items()]
        found = await self._call(self.api.containers, all=True, filters={"label": wanted})
        return {str(c["Id"]): dict(c.get("Labels") or {}) for c in found}

    async def list_ids(self, labels: dict[str, str]) -> list[str]:
        """Ids of all containers (running or not) carrying these labels."""
        return list(await self.list_labelled(labels))

    async def image_id(self, name: str) -> str | None:
        try:
            info = await self._call(self.api.inspect_image, name)
        except docker.errors.NotFound:
            return None
        return str(info["Id"])

    async def attach(self, container_id: str) -> AttachedStream:
        """Attach stdin/stdout/stderr; done before start so no output is missed."""
        stream = await anyio.connect_unix(self._socket)
        try:
            return AttachedStream(stream, await self._upgrade(stream, container_id))
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            raise

    @staticmethod
    async def _upgrade(stream: ByteStream, container_id: str) -> bytes:
        """Send the attach request; return what followed the response headers."""
        request = (
            f"POST /containers/{quote(container_id)}/attach?stream=1&stdin=1&stdout=1&stderr=1"
            " HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        )
        await stream.send(request.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            try:
                buf += await stream.receive()
            except anyio.EndOfStream:
                break
        head, _, rest = buf.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status_line and b" 200 " not in status_line:
            raise EngineError(f"attach to {container_id[:12]} failed: {status_line.decode()}")
        return rest

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
