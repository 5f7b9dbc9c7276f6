"""The app in this process, served by uvicorn on a free port in a thread, for tests that
patch its internals or give it its own settings and Redis (no worker, no Docker)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from app.main import create_app
from runtimes.settings import Settings
from tests.client import Client
from tests.processes import free_port

START_TIMEOUT_S = 10.0


@contextmanager
def serving(redis_url: str, settings: Settings | None = None) -> Iterator[Client]:
    """A client of `create_app(settings, redis_url)`, started and stopped around the block."""
    port = free_port()
    app = create_app(settings or Settings(), redis_url)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"app-{port}")
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
            time.sleep(0.02)
        yield Client(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT_S)
