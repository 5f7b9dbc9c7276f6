"""The one adapter to the Docker engine: the calls the pool and the image builder need, all async.

It wraps aiodocker (aiohttp over the engine's unix socket, pooled connections) and adds what
the callers rely on: every call has a deadline, and every way a call can fail comes out as an
`EngineError`, so a hung or flaky engine is counted by the pool's breaker instead of holding a
create slot forever or ending the worker. An attached container is a stream of
`(STDOUT | STDERR, bytes)` chunks plus its stdin.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import aiodocker
import aiohttp
import anyio
from aiodocker.containers import DockerContainer
from aiodocker.stream import Message, Stream
from yarl import URL

from poolmgr.engine_errors import EngineError, EngineTimeout, NotFound

STDOUT, STDERR = 1, 2

# The socket path goes to the connector; aiodocker builds request URLs on this dummy host.
_UNIX_BASE_URL = "unix://localhost"
# No detach keys: stdin carries binary agent frames, none of which may end the attachment.
_ATTACH_QUERY = {"stdin": "1", "stdout": "1", "stderr": "1", "stream": "1", "detachKeys": ""}

# How a broken transport or an unusable answer shows inside aiodocker and aiohttp: refused,
# reset or closed connections and cut-off bodies (ClientError, OSError), malformed JSON
# (ValueError), an answer without an expected field (KeyError) or with a content type
# aiodocker cannot classify (TypeError).
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, ValueError, KeyError, TypeError)


@dataclass(frozen=True)
class EngineTimeouts:
    """Deadlines of engine calls, in seconds.

    Creating, starting and removing containers waits for the engine's own work, which is slow
    on a busy host; lookups are quick; a readiness probe must answer within its own deadline;
    an image build or pull takes minutes. An attached stream has no deadline at all: a warm
    container's stream is idle until its job arrives.
    """

    ping_s: float = 2.0
    quick_s: float = 5.0
    slow_s: float = 30.0
    build_s: float = 1800.0


DEFAULT_TIMEOUTS = EngineTimeouts()


@contextlib.contextmanager
def _guard(what: str, timeout_s: float) -> Iterator[None]:
    """Give a call `timeout_s` seconds, and turn every way it can fail into an `EngineError`."""
    try:
        with anyio.fail_after(timeout_s):
            yield
    except TimeoutError:
        raise EngineTimeout(
            f"{what}: no answer from the docker engine in {timeout_s:g} s"
        ) from None
    except aiodocker.DockerError as exc:
        raise (NotFound if exc.status == 404 else EngineError)(f"{what}: {exc}") from exc
    except _TRANSPORT_ERRORS as exc:
        raise EngineError(f"{what}: {exc!r}") from exc


class AttachedStream:
    """A container's attached stdin (write) and stdout/stderr chunks (read).

    A stream the container or the engine closed simply ends; writing to it raises
    `anyio.BrokenResourceError`, like any broken anyio stream.
    """

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._early: deque[Message] = deque()
        # One reader at a time: a claimed container's reader waits here until the pool's
        # watcher, just cancelled, has left its read. Uncontended it does not yield, so a
        # burst of buffered output is read in one go (and coalesced into few frames).
        self._reading = anyio.Lock(fast_acquire=True)
        self.closed = False

    async def send(self, data: bytes) -> None:
        """Write to the container's stdin."""
        if self.closed:
            raise anyio.ClosedResourceError
        try:
            await self._stream.write_in(data)
        except (AssertionError, *_TRANSPORT_ERRORS) as exc:
            # aiodocker asserts on a connection that the engine has already closed
            raise anyio.BrokenResourceError(f"the container's stdin is gone: {exc!r}") from exc

    async def chunks(self) -> AsyncIterator[tuple[int, bytes]]:
        """Yield `(STDOUT | STDERR, payload)` until the container's output ends."""
        while self._early:
            early = self._early.popleft()
            yield early.stream, early.data
        while (message := await self._read()) is not None:
            yield message.stream, message.data

    async def wait_closed(self) -> None:
        """Keep anything that arrives until the stream ends; an idle agent says nothing."""
        while (message := await self._read()) is not None:
            self._early.append(message)

    async def aclose(self) -> None:
        self.closed = True
        await _close_quietly(self._stream)

    async def _read(self) -> Message | None:
        message: Message | None = None
        async with self._reading:
            if not self.closed:
                with contextlib.suppress(*_TRANSPORT_ERRORS):
                    message = await self._stream.read_out()
                if message is None:
                    self.closed = True
        return message


async def _close_quietly(stream: Stream) -> None:
    """Close an attach stream; one whose connection is already gone has nothing left to close."""
    with contextlib.suppress(AssertionError, *_TRANSPORT_ERRORS):
        await stream.close()


class Engine:
    """The Docker engine API, as the pool and the image builder use it.

    The client connects on first use, in the running event loop; its owner closes it with
    `aclose()` (or `async with`). Timeouts are injectable, so tests of a hung engine are quick.
    """

    def __init__(self, docker_url: str, timeouts: EngineTimeouts = DEFAULT_TIMEOUTS) -> None:
        if not docker_url.startswith("unix://"):
            raise EngineError(f"only unix:// docker URLs are supported, got {docker_url!r}")
        self._socket = docker_url.removeprefix("unix://")
        self.timeouts = timeouts
        self._docker: aiodocker.Docker | None = None
        self._connector: aiohttp.UnixConnector | None = None
        self._closed = False

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client and its connections; later calls raise `EngineError`."""
        self._closed = True
        if self._docker is not None and self._connector is not None:
            docker, connector = self._docker, self._connector
            self._docker = self._connector = None
            await docker.close()
            await connector.close()

    def _client(self) -> aiodocker.Docker:
        if self._closed:
            raise EngineError("the docker engine client is closed")
        if self._docker is None:
            # No connection limit: every attached container holds a connection for its life.
            self._connector = aiohttp.UnixConnector(self._socket, limit=0)
            self._docker = aiodocker.Docker(_UNIX_BASE_URL, connector=self._connector)
        return self._docker

    def _container(self, container_id: str) -> DockerContainer:
        return self._client().containers.container(container_id)

    async def ping(self) -> bool:
        """Whether the engine answers within the ping deadline (readiness must not hang)."""
        try:
            with _guard("ping", self.timeouts.ping_s):
                # /_ping, as the docker CLI does (/version makes dockerd ask containerd, ~10 ms);
                # aiodocker has no call for it, so its request helper makes it
                await self._client()._query_json("_ping", versioned_api=False)
        except EngineError:
            return False
        return True

    async def create(self, config: dict[str, Any]) -> str:
        """Create a container from an API-format config; its id."""
        with _guard("create a container", self.timeouts.slow_s):
            return (await self._client().containers.create(config)).id

    async def start(self, container_id: str) -> None:
        with _guard(f"start {container_id[:12]}", self.timeouts.slow_s):
            await self._container(container_id).start()

    async def remove(self, container_id: str) -> None:
        """Kill and remove; a container that is already gone (or going) is fine."""
        try:
            with _guard(f"remove {container_id[:12]}", self.timeouts.slow_s):
                await self._container(container_id).delete(force=True, v=True)
        except NotFound:
            pass
        except EngineError as exc:
            if "already in progress" not in str(exc):
                raise

    async def set_memory(self, container_id: str, memory_mb: int) -> None:
        limit = memory_mb * 1024 * 1024
        with _guard(f"update {container_id[:12]}", self.timeouts.quick_s):
            # aiodocker has no call for /containers/{id}/update either
            await self._client()._query_json(
                f"containers/{container_id}/update",
                "POST",
                data={"Memory": limit, "MemorySwap": limit},
            )

    async def inspect(self, container_id: str) -> dict[str, Any]:
        with _guard(f"inspect {container_id[:12]}", self.timeouts.quick_s):
            return await self._container(container_id).show()

    async def list_labelled(self, labels: dict[str, str]) -> dict[str, dict[str, str]]:
        """`{id: labels}` of all containers (running or not) carrying these labels."""
        wanted = [f"{k}={v}" if v else k for k, v in labels.items()]
        with _guard("list containers", self.timeouts.quick_s):
            found = await self._client().containers.list(all=True, filters={"label": wanted})
            return {c.id: dict(c["Labels"] or {}) for c in found}

    async def list_created(self, labels: dict[str, str]) -> dict[str, float]:
        """`{id: creation time (unix seconds)}` of all containers carrying these labels."""
        wanted = [f"{k}={v}" if v else k for k, v in labels.items()]
        with _guard("list containers", self.timeouts.quick_s):
            found = await self._client().containers.list(all=True, filters={"label": wanted})
            return {c.id: float(c["Created"]) for c in found}

    async def list_ids(self, labels: dict[str, str]) -> list[str]:
        """Ids of all containers (running or not) carrying these labels."""
        return list(await self.list_labelled(labels))

    async def image_id(self, name: str) -> str | None:
        """The id of the image called `name`, or None when there is none."""
        try:
            with _guard(f"inspect image {name}", self.timeouts.quick_s):
                return str((await self._client().images.inspect(name))["Id"])
        except NotFound:
            return None

    async def image_labels(self, name: str) -> dict[str, str] | None:
        """The labels of the image called `name`, or None when there is no such image."""
        try:
            with _guard(f"inspect image {name}", self.timeouts.quick_s):
                config = (await self._client().images.inspect(name))["Config"]
                return dict(config.get("Labels") or {})
        except NotFound:
            return None

    async def read_image_file(self, image: str, path: str) -> bytes:
        """A file of an image, read from a container that is created but never started."""
        container_id = await self.create({"Image": image, "Entrypoint": ["true"], "Cmd": []})
        try:
            with _guard(f"read {path} of {image}", self.timeouts.quick_s):
                archive = await self._container(container_id).get_archive(path)
                member = archive.extractfile(archive.getmembers()[0])
                if member is None:
                    raise EngineError(f"{path} of {image} is not a file")
                return member.read()
        finally:
            with anyio.CancelScope(shield=True):
                await self.remove(container_id)

    async def attach(self, container_id: str) -> AttachedStream:
        """Attach stdin/stdout/stderr; done before start so no output is missed."""
        url = URL(f"containers/{container_id}/attach").with_query(_ATTACH_QUERY)

        async def setup() -> tuple[URL, bytes | None, bool]:
            return url, None, False  # (path, body, tty): our containers never have a TTY

        # Not `container.attach()`: it inspects the container first, to learn about its TTY;
        # that is one more engine round trip for every container the pool starts.
        stream = Stream(self._client(), setup)
        try:
            with _guard(f"attach {container_id[:12]}", self.timeouts.quick_s):
                await stream.__aenter__()  # aiodocker connects lazily: connect before the start
        except BaseException:
            with anyio.CancelScope(shield=True):
                await _close_quietly(stream)
            raise
        return AttachedStream(stream)

    async def build(
        self,
        context: IO[bytes],
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
        on_output: Callable[[str], None],
    ) -> None:
        """Build `tag` from a tar build context; each line of build output goes to `on_output`."""
        with _guard(f"build {tag}", self.timeouts.build_s):
            progress = self._client().images.build(
                fileobj=context,
                encoding="identity",
                tag=tag,
                buildargs=dict(buildargs),
                labels=dict(labels),
                rm=True,
                forcerm=True,
                stream=True,
            )
            async for chunk in progress:
                on_output(str(chunk.get("stream", "")))

    async def pull(self, name: str) -> None:
        with _guard(f"pull {name}", self.timeouts.build_s):
            await self._client().images.pull(name)
