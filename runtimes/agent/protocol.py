"""Frames of `kind (1 byte) | length (u32, big endian) | payload`, both ways.

Worker -> agent: JOB (JSON), STDIN (bytes), STDIN_EOF. Agent -> worker: READY once the
runtime is loaded; COMPILED (JSON `{"ok", "ms"}`) after a compile step; STDOUT/STDERR
chunks in the order they were read; then EXIT (JSON `{"exit_code", "signal",
"oom_kills"}`): an explicit end, never inferred from the stream closing.

A program started with an ordered channel (fd 3) writes its stdout and stderr there as
STDOUT/STDERR frames of at most ORDERED_PAYLOAD bytes: each such write is atomic on a pipe
(at most PIPE_BUF), so the two streams keep the order in which they were written.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

HEADER = struct.Struct(">cI")
JOB, STDIN, STDIN_EOF = b"J", b"I", b"Z"
READY, STDOUT, STDERR, COMPILED, EXIT = b"R", b"1", b"2", b"C", b"X"
CHUNK = 65536
MAX_AGENT_FRAME = CHUNK + 4096  # the largest frame the agent itself ever writes
PIPE_BUF = 4096
ORDERED_PAYLOAD = PIPE_BUF - HEADER.size
ORDERED_FD = 3  # the program's ordered output channel
LAUNCHER_CONTROL_FD = 4  # a pre-started launcher's job and report channel


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    """One protocol frame."""
    return HEADER.pack(kind, len(payload)) + payload


class FrameTooLarge(ValueError):
    """A frame longer than the reader accepts: the other side is broken or hostile."""


class FrameReader:
    """Splits a byte stream into frames, whatever the chunking of the transport.

    `max_frame` bounds what the reader buffers for a frame the program might have forged.
    """

    def __init__(self, max_frame: int | None = None) -> None:
        self._buf = bytearray()
        self._max = max_frame

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bytes]]:
        self._buf += data
        while len(self._buf) >= HEADER.size:
            kind, size = HEADER.unpack_from(self._buf)
            if self._max is not None and size > self._max:
                raise FrameTooLarge(f"a {size}-byte frame exceeds {self._max}")
            end = HEADER.size + size
            if len(self._buf) < end:
                return
            payload = bytes(self._buf[HEADER.size : end])
            del self._buf[:end]
            yield kind, payload
