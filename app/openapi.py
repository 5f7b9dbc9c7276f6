"""`GET /openapi.json`: the HTTP API as an OpenAPI 3.1 document.

Ranges, field names, statuses and languages are read from the constants the code checks
with, and the limits from the server's settings, so the document cannot drift from them.
OpenAPI cannot describe WebSockets: `x-websockets` names them and points to docs/api.md.
"""

from __future__ import annotations

from dataclasses import fields
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import validation
from app.admission import BUSY_RETRY_S, SHED_RETRY_S
from app.http import WAIT_MARGIN_S
from app.responses import json_response
from app.state import AppState
from runtimes import wire
from runtimes.lifecycle import Status
from runtimes.registry import RUNTIMES
from runtimes.settings import Settings

Schema = dict[str, Any]

DOCS = "docs/api.md"
Security = list[dict[str, list[str]]]
BEARER: Security = [{"bearer": []}]
OPEN: Security = []
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
_JOB_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(wire.Job)}


def _ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _nullable(kind: str, **extra: Any) -> Schema:
    return {"type": [kind, "null"], **extra}


def _languages() -> str:
    return ", ".join(
        f"`{rt.language}`" + (f" ({', '.join(rt.aliases)})" if rt.aliases else "")
        for rt in RUNTIMES.values()
    )


def _request_fields(settings: Settings) -> dict[str, Schema]:
    """Every field `validation.build_job` reads, in the order the docs show them."""
    timeout_lo, timeout_hi = wire.TIMEOUT_RANGE
    memory_lo, memory_hi = validation.MEMORY_RANGE
    return {
        "language": {
            "type": "string",
            "description": f"A language or alias, any case: {_languages()}.",
        },
        "version": _nullable(
            "string",
            default=None,
            description="When given, must match the version the runtime's image reports"
            ' ("3.11" matches 3.11.2; "*" matches any).',
        ),
        "code": {
            "type": "string",
            "description": "The program (one file, the language's entry file). Exactly one of"
            f" `code` and `files`; at most {settings.max_code_bytes} bytes (413 code_too_large).",
        },
        "files": {
            "type": "array",
            "minItems": 1,
            "maxItems": settings.max_files,
            "items": _ref("schemas", "SourceFile"),
            "description": "Several files; the first is the entry point. More than"
            f" {settings.max_files} is a 413 (too_many_files); together at most"
            f" {settings.max_code_bytes} bytes (413 code_too_large).",
        },
        "stdin": {
            "type": "string",
            "default": _JOB_DEFAULTS["stdin"],
            "description": f"Standard input; at most {settings.max_stdin_bytes} bytes"
            " (413 stdin_too_large).",
        },
        "args": {
            "type": "array",
            "maxItems": validation.MAX_ARGS,
            "items": {"type": "string", "maxLength": validation.MAX_ARG_CHARS},
            "default": list(_JOB_DEFAULTS["args"]),
            "description": "Command-line arguments.",
        },
        "timeout_s": {
            "type": "number",
            "minimum": timeout_lo,
            "maximum": timeout_hi,
            "default": _JOB_DEFAULTS["timeout_s"],
            "description": "Wall-clock limit of the program, in seconds (a compile step has"
            " its own limit).",
        },
        "memory_mb": {
            "type": "integer",
            "minimum": memory_lo,
            "maximum": memory_hi,
            "default": _JOB_DEFAULTS["memory_mb"],
            "description": "Memory limit in MiB (no swap).",
        },
        "interactive": {
            "type": "boolean",
            "default": _JOB_DEFAULTS["interactive"],
            "description": "Keep stdin open after `stdin`, for stdin frames over a WebSocket.",
        },
        "tty": {
            "type": "boolean",
            "default": _JOB_DEFAULTS["tty"],
            "description": "Run under an 80x24 pseudo-terminal: one ordered stdout stream.",
        },
    }


def _execute_request(settings: Settings) -> Schema:
    documented = _request_fields(settings)
    # A field the validator takes but this module does not describe still appears (and the
    # test fails on its empty schema), rather than the server failing to start.
    order = [*documented, *sorted(validation._FIELDS - documented.keys())]
    properties = {name: documented.get(name, {}) for name in order if name in validation._FIELDS}
    return {
        "type": "object",
        "description": "Also the body of a `run` frame on /ws/run (with its `type`).",
        "required": ["language"],
        "oneOf": [{"required": ["code"]}, {"required": ["files"]}],
        "additionalProperties": False,
        "properties": properties,
    }


def _schemas(settings: Settings) -> dict[str, Schema]:
    statuses = [status.value for status in Status]
    timings = {f.name: _nullable("number", minimum=0) for f in fields(wire.Timings)}
    return {
        "ExecuteRequest": _execute_request(settings),
        "SourceFile": {
            "type": "object",
            "required": ["content"],
            "additionalProperties": False,
            "properties": {
                "name": {
                    "type": "string",
                    "pattern": f"^(?:{validation._NAME.pattern})$",
                    "maxLength": validation.MAX_NAME_CHARS,
                    "description": "A plain relative path, unique, never both a file and a"
                    " directory; may be left out on the first file only (it is then the"
                    " language's entry file name).",
                },
                "content": {"type": "string"},
            },
        },
        "Accepted": {
            "type": "object",
            "required": ["execution_id", "status", "websocket_url", "estimated_wait_ms"],
            "properties": {
                "execution_id": {"type": "string"},
                "status": {"const": Status.QUEUED.value},
                "websocket_url": {"type": "string", "examples": ["/ws/execution/0a1b2c"]},
                "estimated_wait_ms": _nullable(
                    "integer",
                    minimum=0,
                    description="How long until the program starts, from the workers' load"
                    " reports; 0 while a warm container and a slot are free for it; null when"
                    " no worker serves the language.",
                ),
            },
        },
        "Timings": {"type": "object", "properties": timings},
        "Result": {
            "type": "object",
            "required": ["execution_id", "language", "status"],
            "description": "Before the end only execution_id, language and status are meaningful.",
            "properties": {
                "execution_id": {"type": "string"},
                "language": {"type": "string", "enum": list(RUNTIMES)},
                "status": {"type": "string", "enum": statuses},
                "exit_code": _nullable("integer"),
                "signal": _nullable("string", examples=["SIGKILL"]),
                "stdout": {"type": "string"},
                "stderr": {"type": "string"},
                "truncated": {"type": "boolean"},
                "start": {"enum": ["warm", "cold", None]},
                "failure_code": _nullable(
                    "string", description="Why a `failed` execution failed; see docs/api.md."
                ),
                "timings": _ref("schemas", "Timings"),
            },
        },
        "Runtime": {
            "type": "object",
            "required": ["language", "version", "aliases", "compiled"],
            "properties": {
                "language": {"type": "string", "enum": list(RUNTIMES)},
                "version": _nullable(
                    "string", description="Read from the image; null until a worker reports it."
                ),
                "aliases": {"type": "array", "items": {"type": "string"}},
                "compiled": {"type": "boolean"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "examples": ["invalid_field"]},
                        "message": {"type": "string"},
                        "field": {"type": "string", "description": "The field at fault."},
                    },
                }
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
        },
        "Readiness": {
            "type": "object",
            "required": ["ready", "checks"],
            "properties": {
                "ready": {"type": "boolean"},
                "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
            },
        },
    }


def _headers(settings: Settings) -> dict[str, Schema]:
    def integer(description: str) -> Schema:
        return {"description": description, "schema": {"type": "integer", "minimum": 0}}

    return {
        "X-RateLimit-Limit": integer(
            f"The caller's bucket size (CODERUNNER_RATE_BURST, here {settings.rate_burst})."
        ),
        "X-RateLimit-Remaining": integer("Requests the caller may make right now."),
        "X-RateLimit-Reset": integer("Seconds until the caller's bucket is full again."),
        "Retry-After": integer("Seconds to wait before trying again."),
        "WWW-Authenticate": {"description": "`Bearer`.", "schema": {"type": "string"}},
    }


def _error(description: str, *headers: str) -> Schema:
    reply: Schema = {"description": description, "content": _json(_ref("schemas", "Error"))}
    if headers:
        reply["headers"] = {name: _ref("headers", name) for name in headers}
    return reply


def _ok(description: str, schema: Schema, *headers: str) -> Schema:
    reply = _error(description, *headers)
    reply["content"] = _json(schema)
    return reply


UNAUTHORIZED = _error(
    "unauthorized: API keys are configured and the request carries none that matches.",
    "WWW-Authenticate",
)
UNAVAILABLE = _error("queue_unavailable: Redis is unreachable; nothing was done.", "Retry-After")
NOT_FOUND = _error("not_found: unknown or expired execution id.")
EXECUTION_ID = {
    "name": "execution_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}


def _admission(settings: Settings) -> str:
    """What this server's front door allows, in words (0 turns a limit off)."""
    if settings.rate_burst and settings.rate_per_s:
        rate = (
            f"Each request first takes a token of the caller's bucket ({settings.rate_burst}"
            f" at once, refilled at {settings.rate_per_s:g} per second, shared by every app"
            " process and by runs over /ws/run); every answer after the key check carries"
            " the X-RateLimit headers."
        )
    else:
        rate = "Rate limiting is off: no X-RateLimit headers."
    cap = settings.max_concurrent_per_user
    depths = ", ".join(
        f"{language} {settings.max_queue_depth(language) or 'never'}" for language in RUNTIMES
    )
    return (
        f"{rate} At most {cap or 'any number of'} executions of one user may be unended at"
        " once (429 too_many_running). New standard jobs are shed (503 queue_full) while"
        " this many jobs of their language wait unclaimed"
        f" (CODERUNNER_MAX_QUEUE_DEPTH[_<LANG>]): {depths}; premium jobs at twice that."
    )


def _execute(settings: Settings) -> Schema:
    return {
        "operationId": "execute",
        "summary": "Submit code",
        "description": _admission(settings),
        "security": BEARER,
        "parameters": [
            {
                "name": "wait",
                "in": "query",
                "required": False,
                "schema": {"type": "boolean", "default": False},
                "description": "`true` (or `1`, `yes`): answer 200 with the final result"
                " instead of 202 at once; if the execution has not ended"
                f" timeout_s + {WAIT_MARGIN_S:g} s later, with the result so far.",
            }
        ],
        "requestBody": {"required": True, "content": _json(_ref("schemas", "ExecuteRequest"))},
        "responses": {
            "200": _ok(
                "With ?wait=true: the final result.", _ref("schemas", "Result"), *RATE_HEADERS
            ),
            "202": _ok("Queued.", _ref("schemas", "Accepted"), *RATE_HEADERS),
            "400": _error("invalid_json: the body is not a JSON object.", *RATE_HEADERS),
            "401": UNAUTHORIZED,
            "413": _error(
                "request_too_large (over CODERUNNER_MAX_REQUEST_BYTES,"
                f" {settings.max_request_bytes}), code_too_large, too_many_files,"
                " stdin_too_large.",
                *RATE_HEADERS,
            ),
            "415": _error(
                "unsupported_media_type: the body must be sent as application/json.",
                *RATE_HEADERS,
            ),
            "422": _error(
                "invalid_field: a wrong type or range, an unknown field, an unknown language"
                " or version; `field` names it.",
                *RATE_HEADERS,
            ),
            "429": _error(
                "rate_limited: the caller's bucket is empty; too_many_running: the caller"
                f" has their most executions unended (Retry-After: {BUSY_RETRY_S}).",
                *RATE_HEADERS,
                "Retry-After",
            ),
            "503": _error(
                "queue_full: the language's queue is past its depth limit, or Redis is out of"
                f" memory (Retry-After: {SHED_RETRY_S}); queue_unavailable: Redis is"
                " unreachable (no X-RateLimit headers). Nothing was queued.",
                *RATE_HEADERS,
                "Retry-After",
            ),
        },
    }


def _execution() -> Schema:
    result = _ref("schemas", "Result")
    return {
        "parameters": [EXECUTION_ID],
        "get": {
            "operationId": "getExecution",
            "summary": "Status and result",
            "security": BEARER,
            "responses": {
                "200": _ok("The execution.", result),
                "401": UNAUTHORIZED,
                "404": NOT_FOUND,
                "503": UNAVAILABLE,
            },
        },
        "delete": {
            "operationId": "abortExecution",
            "summary": "Abort",
            "description": "A queued execution ends at once; a running one is killed.",
            "security": BEARER,
            "responses": {
                "200": _ok("The result, status `aborted`.", result),
                "401": UNAUTHORIZED,
                "404": NOT_FOUND,
                "409": _error("already_finished: the execution had already ended."),
                "503": UNAVAILABLE,
            },
        },
    }


def _open_get(operation_id: str, summary: str, responses: Schema) -> Schema:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "description": "Open: no key needed.",
            "security": OPEN,
            "responses": responses,
        }
    }


def _paths(settings: Settings) -> dict[str, Schema]:
    return {
        "/api/v1/execute": {"post": _execute(settings)},
        "/api/v1/execution/{execution_id}": _execution(),
        "/api/v1/runtimes": {
            "get": {
                "operationId": "listRuntimes",
                "summary": "The languages",
                "security": BEARER,
                "responses": {
                    "200": _ok(
                        "Every language.", {"type": "array", "items": _ref("schemas", "Runtime")}
                    ),
                    "401": UNAUTHORIZED,
                    "503": UNAVAILABLE,
                },
            }
        },
        "/healthz": _open_get(
            "healthz", "Alive", {"200": _ok("The process serves.", _ref("schemas", "Health"))}
        ),
        "/readyz": _open_get(
            "readyz",
            "Ready",
            {
                "200": _ok("Every check passed.", _ref("schemas", "Readiness")),
                "503": _ok("A check failed (false).", _ref("schemas", "Readiness")),
            },
        ),
        "/metrics": _open_get(
            "metrics",
            "Prometheus metrics",
            {
                "200": {
                    "description": f"Prometheus text ({CONTENT_TYPE_LATEST}).",
                    "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
                }
            },
        ),
        "/": _open_get(
            "editor",
            "The editor page",
            {
                "200": {
                    "description": "One self-contained page; it talks to /ws/run.",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                },
                "304": {"description": "If-None-Match matched the page's ETag."},
            },
        ),
        "/openapi.json": _open_get(
            "openapi",
            "This document",
            {"200": _ok("OpenAPI 3.1.", {"type": "object"})},
        ),
    }


_WEBSOCKETS = {
    "/ws/execution/{execution_id}": "Watch one execution: status, every output frame"
    " (replayed, then live), exit, close 1000. Client frames: stdin, kill, ping.",
    "/ws/run": "One socket per editor session: run, then accepted and the run's frames (each"
    " with its execution_id), one run at a time. Client frames: run, stdin, kill, ping.",
}


def document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI document of a server with `settings`."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "code-runner",
            "version": _version(),
            "description": "Runs code in fresh, locked-down containers. With"
            " CODERUNNER_API_KEYS set, /api/v1 needs `Authorization: Bearer <key>` (401"
            " otherwise); without keys the service is open and each client address is a"
            " user. /healthz, /readyz, /metrics, / and /openapi.json are always open. The"
            f" WebSockets ({', '.join(_WEBSOCKETS)}; key as `?token=` or the Bearer header)"
            f" are described in {DOCS}, with every frame and close code.",
        },
        "paths": _paths(settings),
        "components": {
            "schemas": _schemas(settings),
            "headers": _headers(settings),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key of CODERUNNER_API_KEYS (key:user[:tier]).",
                }
            },
        },
        "x-websockets": {
            path: {"description": description, "docs": DOCS}
            for path, description in _WEBSOCKETS.items()
        },
    }


def _version() -> str:
    try:
        return version("code-runner")
    except PackageNotFoundError:
        return "0"


async def openapi(request: Request) -> Response:
    return json_response(document(AppState.of(request).settings))


routes = [Route("/openapi.json", openapi, methods=["GET"])]
