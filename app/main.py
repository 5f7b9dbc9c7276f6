"""The Starlette application; its lifespan owns the Redis client and the relay."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from app import http, metrics, ws
from app.errors import HANDLERS
from app.executions import ExecutionStore
from app.relay import Relay
from app.snapshots import Snapshots
from app.sockets import SocketLimits
from app.state import AppState, ReadinessCheck
from runtimes.redis_client import connect
from runtimes.settings import Settings


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
        app.state.coderunner = AppState(
            settings,
            store,
            relay,
            Snapshots(store),
            SocketLimits(settings.max_watchers_per_execution, settings.max_sockets_per_client),
            {name: _guarded(c) for name, c in checks.items()},
        )
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(relay.run)
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
        finally:  # outside the cancelled scope, where closing can still await
            await relay.aclose()
            await redis.aclose()

    return Starlette(
        routes=[*http.routes, *ws.routes, *metrics.routes],
        middleware=_cors(settings),
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
