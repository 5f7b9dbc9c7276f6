"""`GET /metrics`: Prometheus text, with the queue depth read from Redis at scrape time."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.state import AppState

QUEUE_DEPTH = Gauge(
    "code_runner_queue_depth",
    "Accepted executions not yet claimed by a worker, per priority queue and language",
    ["queue", "language"],
)


async def metrics(request: Request) -> Response:
    depths = await AppState.of(request).store.queue_depths()
    for (language, priority), depth in depths.items():
        QUEUE_DEPTH.labels(priority, language).set(depth)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics, methods=["GET"])]
