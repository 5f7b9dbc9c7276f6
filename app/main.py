"""The Starlette application; its lifespan owns the Redis client and the relay."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from app import http, metrics, openapi, page, run_socket, ws
from app.admission import Admission
from app.errors import HANDLERS
from app.estimate import WaitEstimator
from app.executions import ExecutionStore
from app.ratelimit import RateLimiter
from app.relay import Relay
from app.snapshots import Snapshots
from app.sockets import SocketLimits
from app.state import AppState, ReadinessCheck
from runtimes.redis_client import connect
from runtimes.settings import Settings

log = logging.getLogger(__name__)


def _guarded(check: ReadinessCheck) -> ReadinessCheck:
    async def run() -> bool:
        try:
            with anyio.fail_after(2):
                return await check()
        except Exception:
            return False

    return run


def _cors(settings: Settings) -> list[Middleware]:
    """No CORS headers unless origins are configured: a browser then refuses a cross-origin
    page the responses, and the JSON-only body forces a preflight that fails, so no other
    site can submit jobs through a visitor's browser."""
    if not settings.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=[
                "Retry-After",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
            ],
        )
    ]


def _announce(settings: Settings, limiter: RateLimiter) -> None:
    """Say at start-up who may call: an open service should never be a surprise."""
    if settings.api_keys:
        log.info("API keys required: %d key(s) configured", len(settings.api_keys))
    else:
        log.warning(
            "the API is OPEN: anyone who can reach it may run code"
            " (set CODERUNNER_API_KEYS=key:user[:tier],... to require keys)"
        )
    if not limiter.enabled:
        log.warning("rate limiting is off (CODERUNNER_RATE_BURST or CODERUNNER_RATE_PER_S is 0)")


def create_app(
    settings: Settings, redis_url: str, extra_readiness: Mapping[str, ReadinessCheck] | None = None
) -> Starlette:
    """The app for `settings`; `extra_readiness` adds checks (the worker's Docker in `dev`)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = connect(redis_url, settings)
        relay = Relay(redis)
        store = ExecutionStore(redis, settings.result_ttl_s, settings.max_stdin_bytes)
        checks = {"redis": store.ping, **(extra_readiness or {})}
        limiter = RateLimiter(redis, settings.rate_burst, settings.rate_per_s)
        estimator = WaitEstimator(redis)
        app.state.coderunner = AppState(
            settings,
            store,
            relay,
            Snapshots(store),
            SocketLimits(settings.max_watchers_per_execution, settings.max_sockets_per_client),
            Admission(settings, store, limiter, estimator),
            readiness={name: _guarded(c) for name, c in checks.items()},
        )
        _announce(settings, limiter)
        with anyio.move_on_after(1), contextlib.suppress(RedisError, OSError):
            await estimator.refresh()  # estimates from the first request on
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(relay.run)
                tg.start_soon(estimator.run)
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
        finally:  # outside the cancelled scope, where closing can still await
            await relay.aclose()
            await redis.aclose()

    return Starlette(
        routes=[
            *http.routes,
            *ws.routes,
            *run_socket.routes,
            *metrics.routes,
            *page.routes,
            *openapi.routes,
        ],
        middleware=_cors(settings),
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )


def drain(app: Starlette) -> None:
    """From SIGTERM on, /readyz answers 503: load balancers stop sending new clients here
    while running executions finish and sockets are closed."""
    state: AppState | None = getattr(app.state, "coderunner", None)
    if state is not None:
        state.draining = True


async def close_sockets(app: Starlette, grace_s: float = 2.0) -> None:
    """Close every WebSocket with 1001 (going away) before the server stops, so that clients
    reconnect elsewhere instead of seeing a dropped connection; waits up to `grace_s`."""
    state: AppState | None = getattr(app.state, "coderunner", None)
    if state is None:
        return
    state.closing.set()
    with anyio.move_on_after(grace_s):
        await state.sockets.all_closed()
