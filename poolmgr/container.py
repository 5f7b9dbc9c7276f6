"""One sandbox container and the agent inside it, spoken to over its attached stream."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson

from poolmgr.engine import STDERR, AttachedStream
from runtimes.agent import protocol as agent

log = logging.getLogger(__name__)


class AgentGone(RuntimeError):
    """The container's output ended before the agent said it was ready or done."""


@dataclass
class Container:
    """A started container whose agent waits for exactly one job."""

    id: str
    language: str
    stream: AttachedStream
    created_at: float = field(default_factory=time.monotonic)
    image_id: str | None = None
    _reader: agent.FrameReader = field(
        default_factory=lambda: agent.FrameReader(agent.MAX_AGENT_FRAME)
    )

    @property
    def alive(self) -> bool:
        return not self.stream.closed

    async def frames(self) -> AsyncIterator[tuple[bytes, bytes]]:
        """The agent's frames, in order; stops when the container's output ends."""
        async for kind, payload in self.stream.chunks():
            if kind == STDERR:
                log.warning("agent %s: %s", self.id[:12], payload[:500].decode(errors="replace"))
                continue
            try:
                for item in self._reader.feed(payload):
                    yield item
            except agent.FrameTooLarge as exc:  # treated like a vanished agent
                log.warning("container %s broke the protocol: %s", self.id[:12], exc)
                return

    async def wait_ready(self) -> None:
        async for kind, _ in self.frames():
            if kind == agent.READY:
                return
        raise AgentGone(f"container {self.id[:12]} exited before its agent was ready")

    async def send_job(self, job: dict[str, object]) -> None:
        await self.stream.send(agent.frame(agent.JOB, orjson.dumps(job)))

    async def send_stdin(self, data: bytes) -> None:
        await self.stream.send(agent.frame(agent.STDIN, data))

    async def close_stdin(self) -> None:
        await self.stream.send(agent.frame(agent.STDIN_EOF))
