"""What the app's lifespan owns, typed, for the endpoints to use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from starlette.requests import HTTPConnection

from app.admission import Admission
from app.executions import ExecutionStore
from app.relay import Relay
from app.snapshots import Snapshots
from app.sockets import SocketLimits
from runtimes.settings import Settings

ReadinessCheck = Callable[[], Awaitable[bool]]


@dataclass
class AppState:
    settings: Settings
    store: ExecutionStore
    relay: Relay
    snapshots: Snapshots
    sockets: SocketLimits
    admission: Admission
    closing: anyio.Event = field(default_factory=anyio.Event)  # close the sockets (1001)
    draining: bool = False  # SIGTERM received: not ready, so balancers send no new clients
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)

    @staticmethod
    def of(conn: HTTPConnection) -> AppState:
        state: AppState = conn.app.state.coderunner
        return state
