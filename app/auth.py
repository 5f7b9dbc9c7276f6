"""Who is calling: an API key's owner, or (when no keys are configured) the client address."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from app.errors import ApiError
from runtimes.settings import ApiKey, Tier

UNAUTHORIZED = ApiError(
    401,
    "unauthorized",
    "an API key is required: send 'Authorization: Bearer <key>' (or ?token=<key> on WebSockets)",
    headers={"WWW-Authenticate": "Bearer"},
)


@dataclass(frozen=True)
class Caller:
    """The user limits and priorities apply to."""

    user: str
    tier: Tier


def _presented(conn: HTTPConnection) -> str | None:
    """The key the request carries: the Bearer header, or `?token=` on a WebSocket (a
    browser cannot set headers on one)."""
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if conn.scope["type"] == "websocket":
        return conn.query_params.get("token") or None
    return None


def _owner(keys: Mapping[str, ApiKey], presented: str) -> ApiKey | None:
    """The key's owner, comparing against every key in constant time per key, so that
    neither the position of a match nor a common prefix shows in the response time."""
    found = None
    candidate = presented.encode()
    for key, owner in keys.items():
        if hmac.compare_digest(key.encode(), candidate):
            found = owner
    return found


def identify(conn: HTTPConnection, keys: Mapping[str, ApiKey]) -> Caller:
    """The caller, or `UNAUTHORIZED` (401 / close 4401) when keys are configured and the
    request has none that matches. Open (no keys): each client address is a user."""
    if not keys:
        host = conn.client.host if conn.client else "unknown"
        return Caller(f"ip:{host}", "standard")
    presented = _presented(conn)
    owner = _owner(keys, presented) if presented else None
    if owner is None:
        raise UNAUTHORIZED
    return Caller(f"key:{owner.user}", owner.tier)
