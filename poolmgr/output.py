"""The program's output as the worker keeps it: capped, decoded, and measured as stored."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

import orjson

ENCODED_FACTOR = 2


@dataclass
class Output:
    """The program's output so far, cut at the limit, decoded without splitting characters.

    The limit holds twice: on the raw bytes the program wrote, and on their size once
    encoded as JSON frames (at most ENCODED_FACTOR times the raw limit), because control
    characters and invalid UTF-8 take up to six times their raw size in Redis and on the wire.
    """

    limit: int
    used: int = 0
    encoded: int = 0
    truncated: bool = False
    text: dict[str, list[str]] = field(default_factory=lambda: {"stdout": [], "stderr": []})
    _decoders: dict[str, codecs.IncrementalDecoder] = field(
        default_factory=lambda: {
            name: codecs.getincrementaldecoder("utf-8")(errors="replace")
            for name in ("stdout", "stderr")
        }
    )

    def add(self, stream: str, data: bytes) -> str:
        room = self.limit - self.used
        if len(data) > room:
            data, self.truncated = data[:room], True
        self.used += len(data)
        return self._keep(stream, self._decoders[stream].decode(data))

    def flush(self, stream: str) -> str:
        return self._keep(stream, self._decoders[stream].decode(b"", final=True))

    def _keep(self, stream: str, text: str) -> str:
        room = self.limit * ENCODED_FACTOR - self.encoded
        size = _encoded_size(text)
        if size > room:
            text, self.truncated = _cut_to(text, room), True
            size = _encoded_size(text)
        self.encoded += size
        if text:
            self.text[stream].append(text)
        return text

    def joined(self, stream: str) -> str:
        return "".join(self.text[stream])


def _encoded_size(text: str) -> int:
    return len(orjson.dumps(text)) - 2


def _cut_to(text: str, size: int) -> str:
    """The longest prefix of `text` whose encoded size is at most `size`."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _encoded_size(text[:mid]) <= size:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]
