"""The app's side of executions in Redis: enqueue a job, read a status, a result, the replay log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis
from redis.typing import EncodableT

from runtimes import keys, transitions, wire
from runtimes.lifecycle import TERMINAL, Status
from runtimes.registry import RUNTIMES
from runtimes.transitions import Transitions

BUSY = transitions.BUSY  # the user already has their most executions not ended
SHED = transitions.SHED  # too many jobs of the language wait: new ones are shed
STDIN_OK, STDIN_CLOSED, STDIN_LIMIT = "ok", "closed", "limit"
# A watcher catches up a page at a time: however long the log (an output cap of many MiB),
# one watcher holds at most this many frames (16 KiB each at most) of it at once.
SNAPSHOT_FRAMES = 64
# Each queued frame costs Redis a list entry whatever its size: their number is capped too.
MAX_STDIN_FRAMES = 10_000
# Stdin is counted in the execution's hash: `stdin_bytes` (the request's stdin, written at
# submit, and every frame so far), `stdin_frames`, and `stdin_closed` (end of stdin was sent).
# KEYS: execution, control. ARGV: message, its bytes of stdin, eof (1 or 0), limit, ttl,
# frame limit.
# Replies: ok, closed, limit, missing, or the execution's end status.
_SEND_STDIN = (
    "local terminal = {"
    + ", ".join(f'["{s.value}"] = true' for s in sorted(TERMINAL))
    + """}
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return 'missing' end
if terminal[current] then return current end
if redis.call('HEXISTS', KEYS[1], 'stdin_closed') == 1 then return 'closed' end
local total = tonumber(redis.call('HGET', KEYS[1], 'stdin_bytes') or '0') + tonumber(ARGV[2])
if total > tonumber(ARGV[4]) then return 'limit' end
if redis.call('HINCRBY', KEYS[1], 'stdin_frames', 1) > tonumber(ARGV[6]) then return 'limit' end
redis.call('HINCRBY', KEYS[1], 'stdin_bytes', ARGV[2])
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'stdin_closed', 1) end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 'ok'
"""
)


class Refused(Exception):
    """A submit that queued nothing: `reason` is BUSY or SHED."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Record:
    """What Redis knows of an execution right now."""

    execution_id: str
    language: str
    status: Status
    exit: wire.ExitEvent | None  # once terminal: the small part of the result a watcher needs


Snapshot = tuple[Record | None, list[bytes]]


class ExecutionStore:
    def __init__(self, redis: Redis, ttl_s: int, max_stdin_bytes: int) -> None:
        self._redis = redis
        self._ttl = ttl_s
        self._max_stdin = max_stdin_bytes
        self._transitions = Transitions(redis)
        self._send_stdin = redis.register_script(_SEND_STDIN)

    async def submit(self, job: wire.Job, max_concurrent: int, max_depth: int) -> int:
        """Record the execution as queued (with its request's stdin counted toward the stdin
        cap) and append it to its language and priority's stream, atomically; how many
        unclaimed jobs will be claimed before it.

        `Refused(BUSY)` when the user has `max_concurrent` executions not ended yet,
        `Refused(SHED)` when `max_depth` jobs of the language wait (premium: twice that);
        nothing is queued then. 0 turns either check off.
        """
        reply, ahead = await self._transitions.submit_counted(
            job, max_concurrent=max_concurrent, max_depth=max_depth
        )
        if reply in (BUSY, SHED):
            raise Refused(reply)
        return ahead

    async def get(self, execution_id: str) -> Record | None:
        if not keys.is_execution_id(execution_id):
            return None
        values = await self._redis.hmget(keys.execution(execution_id), _RECORD_FIELDS)
        return _record(execution_id, cast(list[bytes | None], values))

    async def result(self, execution_id: str) -> wire.Result | None:
        """The final result (all of its output), once there is one."""
        if not keys.is_execution_id(execution_id):
            return None
        raw = await self._redis.hget(keys.execution(execution_id), "result")
        return wire.decode_result(raw) if raw else None

    async def snapshot(self, execution_id: str, start: int = 0) -> Snapshot:
        """The record and at most SNAPSHOT_FRAMES frames of its replay log from index `start`
        on, read atomically in one round trip. A frame's index is at least its `seq` (a
        retried append may repeat a frame), so `start = next seq wanted` never skips one."""
        if not keys.is_execution_id(execution_id):
            return None, []
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hmget(keys.execution(execution_id), _RECORD_FIELDS)
            pipe.lrange(keys.output_log(execution_id), start, start + SNAPSHOT_FRAMES - 1)
            values, frames = await pipe.execute()
        return _record(execution_id, values), frames

    async def abort(self, record: Record) -> str:
        """ABORTED_NOW (it was queued), KILL_SENT (its worker kills it), or its end status."""
        return await self._transitions.abort(record.execution_id, record.language, self._ttl)

    async def send_stdin(self, execution_id: str, message: bytes, size: int, eof: bool) -> str:
        """Queue a stdin message for the execution's worker (kept while it is still queued).

        STDIN_OK, or why not: STDIN_CLOSED (after end of stdin), STDIN_LIMIT (the request's
        stdin and all frames together may not pass `max_stdin_bytes`, nor the frames number
        more than MAX_STDIN_FRAMES), or its end status.
        """
        if not keys.is_execution_id(execution_id):
            return "missing"
        keys_ = [keys.execution(execution_id), keys.control(execution_id)]
        args: list[EncodableT] = [
            message,
            size,
            int(eof),
            self._max_stdin,
            self._ttl,
            MAX_STDIN_FRAMES,
        ]
        reply = await self._send_stdin(keys=keys_, args=args)
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    async def queue_depths(self) -> dict[tuple[str, str], int]:
        """Accepted jobs no worker has claimed yet, per (language, priority), in one round trip."""
        queues = [(language, priority) for language in RUNTIMES for priority in keys.PRIORITIES]
        async with self._redis.pipeline(transaction=False) as pipe:
            for language, priority in queues:
                pipe.xlen(keys.job_stream(language, priority))
                pipe.xpending(keys.job_stream(language, priority), keys.WORKER_GROUP)
            replies = await pipe.execute(raise_on_error=False)
        depths = {}
        for i, queue in enumerate(queues):
            length, pending = replies[2 * i], replies[2 * i + 1]
            claimed = pending["pending"] if isinstance(pending, dict) else 0
            depths[queue] = max(0, int(length) - claimed) if isinstance(length, int) else 0
        return depths

    async def runtime_versions(self) -> dict[str, str]:
        """`{language: version}` as the workers read them from their images."""
        raw = await self._redis.hgetall(keys.RUNTIME_VERSIONS)
        return {k.decode(): v.decode() for k, v in cast(dict[bytes, bytes], raw).items()}

    async def ping(self) -> bool:
        return bool(await self._redis.ping())


# The result itself (with all the output) is read only for GET: a watcher catching up a page
# at a time would otherwise read the whole output with every page.
_RECORD_FIELDS = ["status", "language", "exit"]


def _record(execution_id: str, values: list[bytes | None]) -> Record | None:
    status, language, raw_exit = values
    if status is None or language is None:
        return None
    return Record(
        execution_id=execution_id,
        language=language.decode(),
        status=Status(status.decode()),
        exit=wire.decode_exit(raw_exit) if raw_exit else None,
    )
