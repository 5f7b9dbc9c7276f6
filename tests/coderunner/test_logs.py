"""Log lines: one JSON object per line for the services, the classic text line for people."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timedelta
from pathlib import Path

from coderunner.logs import TEXT_FORMAT, JsonFormatter
from coderunner.redis_server import EmbeddedRedis
from tests.client import Client
from tests.processes import free_port, start, stop


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("poolmgr.publisher", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_json_line_has_the_base_keys_and_the_fields_at_top_level() -> None:
    fields = {"execution_id": "e1", "user": "ada", "status": "running", "duration_ms": 3.5}
    line = JsonFormatter().format(_record("execution=%s", "e1", fields=fields))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed == {
        "ts": parsed["ts"],
        "level": "INFO",
        "logger": "poolmgr.publisher",
        "message": "execution=e1",
        **fields,
    }
    assert datetime.fromisoformat(parsed["ts"]).utcoffset() == timedelta(0)  # ISO 8601, UTC


def test_fields_cannot_overwrite_the_base_keys_and_odd_values_become_strings() -> None:
    line = JsonFormatter().format(_record("hi", fields={"message": "forged", "path": Path("/x")}))
    parsed = json.loads(line)
    assert (parsed["message"], parsed["path"]) == ("hi", "/x")


def test_an_exception_is_one_exc_key_on_the_same_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert line.count("\n") == 0
    parsed = json.loads(line)
    assert parsed["message"] == "failed"
    assert parsed["exc"].startswith("Traceback (most recent call last):")
    assert "ValueError: boom\nsecond line" in parsed["exc"]


def test_text_format_is_unchanged() -> None:
    assert TEXT_FORMAT == "%(asctime)s %(levelname)s %(name)s: %(message)s"
    line = logging.Formatter(TEXT_FORMAT).format(_record("x=%d", 1, fields={"user": "ada"}))
    assert line.endswith(" INFO poolmgr.publisher: x=1")
    assert "ada" not in line


def _api_log_lines(tmp_path: Path, **env: str) -> list[str]:
    """Start `coderunner api`, wait until it is ready, stop it; its log's lines."""
    log = tmp_path / "api.log"
    with EmbeddedRedis() as redis:
        port = free_port()
        api = start("api", log, redis_url=redis.url, port=str(port), **env)
        try:
            Client(f"http://127.0.0.1:{port}").wait_ready(api)
        finally:
            assert stop(api) == 0
    return log.read_text().splitlines()


def test_api_logs_json_lines_by_default(tmp_path: Path) -> None:
    parsed = [json.loads(line) for line in _api_log_lines(tmp_path)]
    assert any(p["logger"] == "coderunner" and "SIGTERM" in p["message"] for p in parsed)


def test_text_can_be_chosen(tmp_path: Path) -> None:
    last = _api_log_lines(tmp_path, log_format="text")[-1]
    assert last.endswith(" INFO coderunner: SIGTERM received: stopping")
