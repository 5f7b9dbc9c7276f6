"""`coderunner`: the one entry point that composes the app and the workers into processes."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import logging
import signal
from collections.abc import AsyncIterator, Generator

import anyio
import uvicorn

from coderunner import logs
from coderunner.redis_server import EmbeddedRedis, RedisServerError
from runtimes.redis_client import connect
from runtimes.settings import Settings, SettingsError

log = logging.getLogger("coderunner")
WS_FRAME_SLACK = 64 * 1024  # a run frame is an execute body plus its "type"


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `_serve` owns the signals and the stop order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _serve(settings: Settings, redis_url: str, api: bool, worker: bool) -> None:
    """Run the API and/or the worker until SIGINT/SIGTERM, then stop the worker gracefully."""
    from app.main import close_sockets, create_app, drain
    from poolmgr.health import worker_app
    from poolmgr.worker import Worker

    if not settings.cluster:  # workers that share a Redis are one cluster
        cluster = hashlib.sha256(redis_url.encode()).hexdigest()[:12]
        settings = dataclasses.replace(settings, cluster=cluster)

    redis = connect(redis_url, settings)
    runner = Worker(settings, redis) if worker else None
    server = None
    if api:
        readiness = {"docker": runner.ready} if runner else {}
        app = create_app(settings, redis_url, readiness)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            log_config=None,  # uvicorn logs through our root logger (JSON or text)
            # Keepalive pings hold idle editor sockets open through proxies and drop dead
            # peers; a frame larger than any valid request is refused with close 1009.
            ws_ping_interval=settings.ws_ping_interval_s,
            ws_ping_timeout=settings.ws_ping_interval_s,
            ws_max_size=settings.max_request_bytes + WS_FRAME_SLACK,
            # The client address is each user's identity when the service is open: only
            # proxies named here may set it (X-Forwarded-For); by default none may.
            proxy_headers=bool(settings.forwarded_allow_ips),
            forwarded_allow_ips=settings.forwarded_allow_ips or None,
        )
        server = _Server(config)
    elif runner is not None:  # a standalone worker serves its own probes and metrics
        health = worker_app(runner)
        port = settings.worker_metrics_port
        config = uvicorn.Config(
            health, host=settings.host, port=port, log_level="warning", log_config=None
        )
        server = _Server(config)
    worker_scope = anyio.CancelScope()

    async def run_worker() -> None:
        assert runner is not None
        with worker_scope:
            await runner.run()

    try:
        async with anyio.create_task_group() as tg:
            if runner is not None:
                tg.start_soon(run_worker)
            if server is not None:
                tg.start_soon(server.serve)
                log.info("serving on http://%s:%d", settings.host, server.config.port)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    log.info("%s received: stopping", signal.Signals(signum).name)
                    break
                # The drain may take a while; a second signal cuts it short, and the clean-up
                # after it (every container removed) still runs.
                async with anyio.create_task_group() as draining:
                    draining.start_soon(_cut_short, signals, draining.cancel_scope)
                    if api:
                        drain(app)
                    if runner is not None:
                        await runner.stop()
                    draining.cancel_scope.cancel()
            worker_scope.cancel()
            if api:
                await close_sockets(app)
            if server is not None:
                server.should_exit = True
    finally:
        await redis.aclose()


async def _cut_short(signals: AsyncIterator[int], drain: anyio.CancelScope) -> None:
    async for signum in signals:
        log.warning("%s again: not waiting for running executions", signal.Signals(signum).name)
        drain.cancel()
        return


def _run(settings: Settings, redis_url: str, api: bool, worker: bool) -> None:
    anyio.run(_serve, settings, redis_url, api, worker, backend_options={"use_uvloop": True})


def _require_redis(settings: Settings) -> str:
    if settings.redis_url is None:
        raise SystemExit("set CODERUNNER_REDIS_URL (e.g. redis://localhost:6379/0)")
    return settings.redis_url


def cmd_api(settings: Settings, _: argparse.Namespace) -> None:
    _run(settings, _require_redis(settings), api=True, worker=False)


def cmd_worker(settings: Settings, _: argparse.Namespace) -> None:
    _run(settings, _require_redis(settings), api=False, worker=True)


def cmd_dev(settings: Settings, _: argparse.Namespace) -> None:
    if settings.redis_url is not None:
        _run(settings, settings.redis_url, api=True, worker=True)
        return
    with EmbeddedRedis(maxmemory=settings.redis_maxmemory) as redis:
        log.info("started a private redis-server at %s", redis.url)
        _run(settings, redis.url, api=True, worker=True)


def cmd_images_build(settings: Settings, args: argparse.Namespace) -> None:
    from poolmgr.images import ImageBuildError, build_images

    try:
        build_images(settings, args.languages)
    except ImageBuildError as exc:
        raise SystemExit(f"coderunner images build: {exc}") from None


def cmd_pool_simulate(_: Settings, args: argparse.Namespace) -> None:
    from poolmgr.simulate import main as simulate

    raise SystemExit(simulate(args.simulate_args))


def cmd_run(argv: list[str]) -> int:
    """`coderunner run`: a client of the API; it needs no settings and parses its own flags."""
    from coderunner.run_client import main as run

    return run(argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coderunner", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="HTTP + WebSocket API (needs Redis)").set_defaults(fn=cmd_api)
    sub.add_parser("worker", help="pool manager + executor (needs Redis + Docker)").set_defaults(
        fn=cmd_worker
    )
    sub.add_parser("dev", help="api + worker in one process, with a private redis").set_defaults(
        fn=cmd_dev
    )
    images = sub.add_parser("images", help="runtime images").add_subparsers(
        dest="action", required=True
    )
    build = images.add_parser("build", help="build the runtime images (offline-capable)")
    build.add_argument("languages", nargs="*", help="languages to build (default: all)")
    build.set_defaults(fn=cmd_images_build)
    pool = sub.add_parser("pool", help="warm pool tools").add_subparsers(
        dest="action", required=True
    )
    simulate = pool.add_parser(
        "simulate",
        help="replay an arrival trace through the sizing policy (see --help)",
        add_help=False,
    )
    simulate.set_defaults(fn=cmd_pool_simulate)
    run = sub.add_parser(
        "run",
        help="run local files on a server, output live, its exit status (see --help)",
        add_help=False,
    )
    run.set_defaults(fn=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.fn is cmd_run:
        raise SystemExit(cmd_run(extra))
    if args.fn is cmd_pool_simulate:
        args.simulate_args = extra  # the simulator parses its own flags
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"coderunner: {exc}") from None
    # JSON for the services, text for the commands a person runs (dev, images, pool).
    logs.configure(settings.log_format or ("json" if args.fn in (cmd_api, cmd_worker) else "text"))
    try:
        args.fn(settings, args)
    except RedisServerError as exc:
        raise SystemExit(f"coderunner: {exc}") from None
