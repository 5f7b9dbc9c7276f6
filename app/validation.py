"""Turns an execute request body into a queued `Job`, or a clear 4xx."""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from app.errors import ApiError
from runtimes import keys, wire
from runtimes.registry import RUNTIMES, lookup
from runtimes.settings import Settings, Tier

MEMORY_RANGE = (64, 512)
MAX_ARGS = 64
MAX_ARG_CHARS = 4096
MAX_NAME_CHARS = 255
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*")
_FIELDS = {
    "language", "version", "code", "files", "stdin", "args",
    "timeout_s", "memory_mb", "interactive", "tty",
}  # fmt: skip


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid_field", message, field)


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


def _number(body: dict[str, Any], field: str, default: int, lo: int, hi: int) -> float:
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(field, f"{field} must be a number from {lo} to {hi}")
    if not lo <= value <= hi:
        raise _invalid(field, f"{field} must be from {lo} to {hi}, got {value}")
    return float(value)


def _files(body: dict[str, Any], entry: str, settings: Settings) -> tuple[wire.SourceFile, ...]:
    code, files = body.get("code"), body.get("files")
    if (code is None) == (files is None):
        raise _invalid("code", "give either code (a string) or files (a list), not both")
    if code is not None:
        if not isinstance(code, str):
            raise _invalid("code", "code must be a string")
        return (wire.SourceFile(entry, code),)
    if not isinstance(files, list) or not files:
        raise _invalid("files", "files must be a non-empty list of {name, content}")
    if len(files) > settings.max_files:
        raise ApiError(413, "too_many_files", f"at most {settings.max_files} files", "files")
    out: list[wire.SourceFile] = []
    for i, f in enumerate(files):
        field = f"files[{i}]"
        if not isinstance(f, dict) or not isinstance(f.get("content"), str):
            raise _invalid(field, f"{field} must be an object with string name and content")
        name = f.get("name", entry if i == 0 else None)
        if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > MAX_NAME_CHARS:
            raise _invalid(
                f"{field}.name",
                f"{field}.name must be a plain relative path of letters, digits, '.', '_', '-'"
                " and '/' (no '..', no leading '/' or '.')",
            )
        if any(part == ".." for part in name.split("/")):
            raise _invalid(f"{field}.name", f"{field}.name must not contain '..'")
        out.append(wire.SourceFile(name, f["content"]))
    names = {f.name for f in out}
    if len(names) != len(out):
        raise _invalid("files", "file names must be unique")
    directories = {name.rsplit("/", 1)[0] for name in names if "/" in name}
    parents = {
        "/".join(d.split("/")[: i + 1]) for d in directories for i in range(d.count("/") + 1)
    }
    clash = sorted(names & parents)
    if clash:
        raise _invalid("files", f"{clash[0]!r} is both a file and a directory")
    return tuple(out)


def _args(body: dict[str, Any]) -> tuple[str, ...]:
    args = body.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise _invalid("args", "args must be a list of strings")
    if len(args) > MAX_ARGS or any(len(a) > MAX_ARG_CHARS for a in args):
        raise _invalid("args", f"at most {MAX_ARGS} args of at most {MAX_ARG_CHARS} characters")
    return tuple(args)


def build_job(
    body: dict[str, Any], settings: Settings, user: str = "", priority: Tier = "standard"
) -> wire.Job:
    """Validate an execute body and return `user`'s job to queue, with a fresh id."""
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise _invalid(unknown[0], f"unknown field {unknown[0]!r}; allowed: {sorted(_FIELDS)}")
    language = body.get("language")
    runtime = lookup(language) if isinstance(language, str) else None
    if runtime is None:
        shown = repr(language)[:40]  # the client's own input, echoed only briefly
        raise _invalid("language", f"unknown language {shown}; available: {sorted(RUNTIMES)}")
    if not isinstance(body.get("version"), str | None):
        raise _invalid("version", 'version must be a string such as "3.11", or null')
    files = _files(body, runtime.entry, settings)
    if sum(len(f.content.encode()) for f in files) > settings.max_code_bytes:
        raise ApiError(
            413, "code_too_large", f"code is limited to {settings.max_code_bytes} bytes", "code"
        )
    stdin = body.get("stdin") or ""
    if not isinstance(stdin, str):
        raise _invalid("stdin", "stdin must be a string")
    if len(stdin.encode()) > settings.max_stdin_bytes:
        raise ApiError(
            413, "stdin_too_large", f"stdin is limited to {settings.max_stdin_bytes} bytes", "stdin"
        )
    interactive, tty = body.get("interactive", False), body.get("tty", False)
    for name, value in (("interactive", interactive), ("tty", tty)):
        if not isinstance(value, bool):
            raise _invalid(name, f"{name} must be true or false")
    return wire.Job(
        execution_id=keys.new_execution_id(runtime.language),
        language=runtime.language,
        files=files,
        stdin=stdin,
        args=_args(body),
        timeout_s=_number(body, "timeout_s", 10, *wire.TIMEOUT_RANGE),
        memory_mb=int(_number(body, "memory_mb", 256, *MEMORY_RANGE)),
        interactive=interactive,
        tty=tty,
        enqueued_at=time.time(),
        user=user,
        priority=priority,
    )


def requested_version(body: dict[str, Any]) -> str | None:
    """The version the request asks for, if it names one (`"*"` and null name none)."""
    version = body.get("version")
    return version if isinstance(version, str) and version != "*" else None


def check_version(language: str, requested: str, actual: str | None) -> None:
    """`"3.11"` matches 3.11.2; an unknown actual version (no worker has reported the image
    yet) is not held against the request."""
    if actual is None or actual == requested or actual.startswith(requested + "."):
        return
    raise _invalid("version", f"{language} has version {actual}, not {requested!r}")
