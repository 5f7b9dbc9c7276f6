"""`/ws/run`: one socket per editor session, many runs on it, one at a time.

A second `run` while one is unfinished is refused (`run_in_progress`): an editor shows one
program's terminal, and refusing keeps every frame's meaning plain. Each frame of a run
carries its `execution_id`. The run goes on if the socket goes away; its result stays
readable over HTTP and `/ws/execution/{id}`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial

import anyio
import orjson
from anyio import CancelScope
from anyio.abc import TaskGroup
from redis.exceptions import RedisError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.admission import Ticket
from app.auth import Caller
from app.client_socket import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_RATE_LIMITED,
    CLOSE_TRY_AGAIN,
    ClientSocket,
    SlowClient,
    receive_text,
)
from app.commands import Command, parse_command
from app.errors import ApiError
from app.state import AppState
from app.watch import UnknownExecution, follow
from app.ws import PONG, accept, deliver, ending, held, until_shutdown
from runtimes import wire

log = logging.getLogger(__name__)

SUBMIT_WAIT_S = 10.0  # how long a stdin or kill frame waits for its run to be queued
CLOSING_CODES = {"rate_limited": CLOSE_RATE_LIMITED, "too_many_running": CLOSE_RATE_LIMITED}


class _Closing(Exception):
    """End the session with this close code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass
class _Run:
    execution_id: str
    submitted: anyio.Event = field(default_factory=anyio.Event)
    queued: bool = False  # submitted and accepted (not refused)
    killed: bool = False


class RunSession:
    def __init__(self, sock: ClientSocket, state: AppState, caller: Caller) -> None:
        self._sock = sock
        self._state = state
        self._caller = caller
        self._run: _Run | None = None
        self._ended: list[tuple[int, str]] = []

    async def serve(self) -> tuple[int, str]:
        """Until the client leaves, the server shuts down, or a refusal closes the socket."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(until_shutdown, self._state, tg.cancel_scope, self._ended)
            await self._guarded(partial(self._receive, tg), tg.cancel_scope)
        return self._ended[0] if self._ended else (CLOSE_NORMAL, "")

    async def _guarded(self, work: Callable[[], Awaitable[None]], scope: CancelScope) -> None:
        """Run `work`; if it ends the session, record the close code and cancel the rest.
        A bug ends only this socket (1011), never silently."""
        try:
            await work()
            return
        except _Closing as exc:
            self._ended.append((exc.code, exc.reason))
        except UnknownExecution as exc:
            self._ended.append((CLOSE_TRY_AGAIN, f"execution {exc} vanished; retry"))
        except (RedisError, SlowClient, WebSocketDisconnect, RuntimeError) as exc:
            self._ended.append(ending(exc))  # RuntimeError: starlette's "the socket is closed"
        except Exception:
            log.exception("a /ws/run session failed")
            self._ended.append((CLOSE_INTERNAL_ERROR, "internal error; the incident was logged"))
        scope.cancel()

    async def _receive(self, tg: TaskGroup) -> None:
        limit = self._state.settings.max_stdin_bytes
        while True:
            text = await receive_text(self._sock.ws, self._sock)
            if text is None:
                continue
            command = parse_command(text, limit)
            if command.kind == "run" and len(text) > self._state.settings.max_request_bytes:
                # Characters, not bytes: a cheap first bound; the body's own limits follow.
                await self._sock.error(
                    "request_too_large",
                    f"a run is limited to {self._state.settings.max_request_bytes} bytes",
                )
            elif command.kind == "run":
                await self._start(command, tg)
            elif command.kind in ("stdin", "kill"):
                await self._control(command, limit)
            elif command.kind == "ping":
                await self._sock.send(PONG)
            else:
                await self._sock.error("invalid_message", command.problem)

    async def _start(self, command: Command, tg: TaskGroup) -> None:
        if self._run is not None:
            await self._sock.error(
                "run_in_progress",
                f"run {self._run.execution_id} has not ended: wait for its exit frame"
                " (send {'type': 'kill'} to end it sooner)",
            )
            return
        admission = self._state.admission
        try:
            headers = await admission.draw(self._caller)
            ticket = await admission.validate(self._caller, command.body, headers)
        except ApiError as exc:
            await self._refuse(exc)
            return
        self._run = _Run(ticket.job.execution_id)
        tg.start_soon(self._guarded, partial(self._execute, ticket, self._run), tg.cancel_scope)

    async def _control(self, command: Command, limit: int) -> None:
        """stdin or kill for the current run, once it is queued (frames keep their order)."""
        run = self._run
        if run is not None:
            with anyio.move_on_after(SUBMIT_WAIT_S):
                await run.submitted.wait()
        if run is None or not run.queued:
            await self._sock.error("no_run", "no run is in progress on this socket")
            return
        if command.kind == "kill" and run.killed:
            return  # one kill is enough; more would only queue more messages
        if await self._sock.within_budget():
            run.killed = run.killed or command.kind == "kill"
            await deliver(self._sock, self._state.store, run.execution_id, command, limit)

    async def _execute(self, ticket: Ticket, run: _Run) -> None:
        """Queue the run, say `accepted`, relay its frames to its exit.

        Queued before subscribing, so the job reaches a worker one round trip sooner: the
        watcher still misses nothing, as it reads the replay log after subscribing. If Redis
        then fails, the socket closes (1013) but the run goes on; its result stays readable.
        """
        state = self._state
        eid = run.execution_id
        prefix = b'{"execution_id":' + orjson.dumps(eid) + b","
        try:
            try:
                wait_ms = await state.admission.submit(ticket)
            except ApiError as exc:
                await self._refuse(exc)
                return
            finally:
                run.submitted.set()
            run.queued = True
            await self._sock.send_json(
                {"type": "accepted", "execution_id": eid, "estimated_wait_ms": wait_ms}
            )
            async with (
                state.relay.watch(eid) as feed,
                aclosing(follow(state.snapshots, feed, eid)) as frames,
            ):
                async for raw in frames:
                    if wire.is_exit(raw):  # a client may send its next run on seeing it
                        self._end(run)
                    await self._sock.send(prefix + raw[1:])
        finally:
            run.submitted.set()
            self._end(run)

    def _end(self, run: _Run) -> None:
        if self._run is run:
            self._run = None

    async def _refuse(self, exc: ApiError) -> None:
        """An error frame; a rate limit also closes the socket (4429)."""
        extra: dict[str, object] = {}
        if exc.field is not None:
            extra["field"] = exc.field
        if "Retry-After" in exc.headers:
            extra["retry_after_s"] = int(exc.headers["Retry-After"])
        await self._sock.error(exc.code, exc.message, **extra)
        if exc.code in CLOSING_CODES:
            raise _Closing(CLOSING_CODES[exc.code], exc.message)


async def run_socket(ws: WebSocket) -> None:
    accepted = await accept(ws)
    if accepted is None:
        return
    sock, caller = accepted
    state = AppState.of(ws)
    await held(sock, state, None, RunSession(sock, state, caller).serve)


routes = [WebSocketRoute("/ws/run", run_socket)]
