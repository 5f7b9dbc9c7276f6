"""Process logging: one JSON object per line (`json`) or the classic text line (`text`).

A log call adds structured fields with `extra={"fields": {...}}`; the JSON format merges
them into the line, the text format keeps only the human message. Never user code or
program output: only ids, names, states and numbers go into fields.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", **fields, "exc"?}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        line: dict[str, object] = dict(fields) if isinstance(fields, Mapping) else {}
        # The base keys win over fields of the same name, so a field cannot forge them.
        line.update(
            ts=datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            level=record.levelname,
            logger=record.name,
            message=record.getMessage(),
        )
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def configure(log_format: str) -> None:
    """Send INFO and above to stderr as `json` or `text`; a no-op once the root has a handler."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
