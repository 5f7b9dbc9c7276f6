"""A standalone worker's own HTTP endpoints, served by its event loop: `/metrics` for
Prometheus, `/healthz` and `/readyz` for Kubernetes probes. Served by the loop that runs
the worker, so a loop that stops turning fails liveness."""

from __future__ import annotations

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from poolmgr.worker import Worker


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def worker_app(worker: Worker) -> Starlette:
    async def healthz(_: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(_: Request) -> Response:
        """Ready while its engine answers and its pools can start containers, its heartbeat
        is renewed (else peers take its jobs over), and it is not draining."""
        checks = {
            "docker": await worker.ready(),
            "heartbeat": not worker.heartbeat.lost.is_set(),
            "serving": not worker.consumer.stopping,
        }
        ok = all(checks.values())
        return _json({"ready": ok, "checks": checks}, 200 if ok else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )
