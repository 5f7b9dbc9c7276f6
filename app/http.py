"""HTTP endpoints of the contract."""

from __future__ import annotations

from contextlib import aclosing

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth import identify
from app.errors import ApiError, headed
from app.relay import Feed
from app.responses import json_response
from app.state import AppState
from app.validation import parse_body
from app.watch import follow, pending_result
from runtimes.registry import RUNTIMES
from runtimes.transitions import ABORTED_NOW, KILL_SENT

WAIT_MARGIN_S = 60.0
ABORT_WAIT_S = 2.0


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = ApiError(413, "request_too_large", f"request bodies are limited to {limit} bytes")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _require_json(request: Request) -> None:
    """Only `application/json`: a cross-site form or `text/plain` POST, which a browser sends
    without a preflight, is refused, so no other web page can submit jobs."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            "the body must be JSON sent with Content-Type: application/json",
        )


async def execute(request: Request) -> Response:
    state = AppState.of(request)
    caller = identify(request, state.settings.api_keys)
    headers = await state.admission.draw(caller)
    with headed(headers):
        _require_json(request)
        body = parse_body(await _read_body(request, state.settings.max_request_bytes))
    ticket = await state.admission.validate(caller, body, headers)
    job = ticket.job
    if request.query_params.get("wait", "").lower() not in ("1", "true", "yes"):
        wait_ms = await state.admission.submit(ticket)
        return json_response(
            {
                "execution_id": job.execution_id,
                "status": "queued",
                "websocket_url": f"/ws/execution/{job.execution_id}",
                "estimated_wait_ms": wait_ms,
            },
            status=202,
            headers=headers,
        )
    # Subscribed first: if Redis cannot confirm it (a 503), nothing was queued to retry.
    async with state.relay.watch(job.execution_id) as feed:
        await state.admission.submit(ticket)
        await _until_final(state, feed, job.execution_id, job.timeout_s + WAIT_MARGIN_S)
    return await _result(state, job.execution_id, headers)


async def _until_final(state: AppState, feed: Feed, execution_id: str, limit_s: float) -> None:
    """Wait (at most `limit_s`) until the execution has its terminal status."""
    with anyio.move_on_after(limit_s):
        async with aclosing(follow(state.snapshots, feed, execution_id)) as frames:
            async for _ in frames:
                pass


async def _result(
    state: AppState, execution_id: str, headers: dict[str, str] | None = None
) -> Response:
    record = await state.store.get(execution_id)
    if record is None:
        raise ApiError(404, "not_found", f"no execution {execution_id!r} (unknown or expired)")
    result = await state.store.result(execution_id) if record.status.terminal else None
    result = result or pending_result(execution_id, record.language, record.status)
    return json_response(result, headers=headers)


async def get_execution(request: Request) -> Response:
    state = AppState.of(request)
    identify(request, state.settings.api_keys)
    return await _result(state, request.path_params["execution_id"])


async def abort(request: Request) -> Response:
    """End a queued or running execution as `aborted`; 409 if it had already ended."""
    state = AppState.of(request)
    identify(request, state.settings.api_keys)
    execution_id = request.path_params["execution_id"]
    record = await state.store.get(execution_id)
    if record is None:
        raise ApiError(404, "not_found", f"no execution {execution_id!r} (unknown or expired)")
    # Subscribed first: if Redis cannot confirm it (a 503), nothing was aborted yet.
    async with state.relay.watch(execution_id) as feed:
        reply = await state.store.abort(record)
        if reply not in (ABORTED_NOW, KILL_SENT):
            raise ApiError(409, "already_finished", f"the execution already ended as {reply}")
        await _until_final(state, feed, execution_id, ABORT_WAIT_S)
    return await _result(state, execution_id)


async def runtimes(request: Request) -> Response:
    """Every language; `version` is what the workers' images report (null until one has)."""
    state = AppState.of(request)
    identify(request, state.settings.api_keys)
    versions = await state.store.runtime_versions()
    return json_response(
        [
            {
                "language": rt.language,
                "version": versions.get(rt.language),
                "aliases": rt.aliases,
                "compiled": rt.compiled,
            }
            for rt in RUNTIMES.values()
        ]
    )


async def healthz(_: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = AppState.of(request)
    checks = {name: await check() for name, check in state.readiness.items()}
    checks["serving"] = not state.draining
    ok = all(checks.values())
    return json_response({"ready": ok, "checks": checks}, status=200 if ok else 503)


routes = [
    Route("/api/v1/execute", execute, methods=["POST"]),
    Route("/api/v1/execution/{execution_id}", get_execution, methods=["GET"]),
    Route("/api/v1/execution/{execution_id}", abort, methods=["DELETE"]),
    Route("/api/v1/runtimes", runtimes, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
