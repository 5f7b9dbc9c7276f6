"""The contract's error shape, and the handlers that make every failure take it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError as RedisOutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app.responses import json_response

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request the API refuses, with what was wrong and what is allowed."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


@contextmanager
def headed(headers: dict[str, str]) -> Iterator[None]:
    """Every ApiError raised in the block also carries `headers` (its own win)."""
    try:
        yield
    except ApiError as exc:
        exc.headers = {**headers, **exc.headers}
        raise


def error_response(err: ApiError) -> Response:
    body: dict[str, str] = {"code": err.code, "message": err.message}
    if err.field is not None:
        body["field"] = err.field
    return json_response({"error": body}, status=err.status, headers=err.headers)


async def api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(ApiError(exc.status_code, code, str(exc.detail)))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(ApiError(500, "internal", "internal error; the incident was logged"))


async def redis_unavailable(_: Request, exc: Exception) -> Response:
    log.warning("redis unavailable: %s", exc)
    return error_response(REDIS_DOWN)


async def redis_full(_: Request, exc: Exception) -> Response:
    log.warning("redis refused a write: %s", exc)
    return error_response(REDIS_FULL)


REDIS_DOWN = ApiError(
    503,
    "queue_unavailable",
    "the queue (Redis) is unreachable right now; retry shortly",
    headers={"Retry-After": "1"},
)
# Redis at its maxmemory with the noeviction policy refuses writes: shed load until it drains.
REDIS_FULL = ApiError(
    503,
    "queue_full",
    "the queue (Redis) is out of memory and takes no new work right now; retry later",
    headers={"Retry-After": "5"},
)
HANDLERS = {
    ApiError: api_error,
    HTTPException: http_error,
    RedisConnectionError: redis_unavailable,
    RedisTimeoutError: redis_unavailable,
    RedisOutOfMemoryError: redis_full,
    Exception: unexpected_error,
}
