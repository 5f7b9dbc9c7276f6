"""The Starlette application; its lifespan owns the Redis client and the relay."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio
from redis.asyncio import Redis
from starlette.applications import Starlette

from app import http, metrics, ws
from app.errors import HANDLERS
from app.executions import ExecutionStore
from app.relay import Relay
from app.state import AppState, ReadinessCheck
from runtimes.settings import Settings


def _guarded(check: ReadinessCheck) -> ReadinessCheck:
    async def run() -> bool:
        try:
            with anyio.fail_after(2):
                return await check()
        except Exception:
            return False

    return run


def create_app(
    settings: Settings, redis_url: str, extra_readiness: Mapping[str, ReadinessCheck] | None = None
) -> Starlette:
    """The app for `settings`; `extra_readiness` adds checks (the worker's Docker in `dev`)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = Redis.from_url(redis_url)
        relay = Relay(redis)
        store = ExecutionStore(redis, settings.result_ttl_s)
        checks = {"redis": store.ping, **(extra_readiness or {})}
        app.state.coderunner = AppState(
            settings, store, relay, {name: _guarded(c) for name, c in checks.items()}
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(relay.run)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                await relay.aclose()
                await redis.aclose()

    return Starlette(
        routes=[*http.routes, *ws.routes, *metrics.routes],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
