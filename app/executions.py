"""The app's side of executions in Redis: enqueue a job, read a status, a result, the replay log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.registry import RUNTIMES
from runtimes.transitions import Transitions


@dataclass(frozen=True)
class Record:
    """What Redis knows of an execution right now."""

    execution_id: str
    language: str
    status: Status
    result: wire.Result | None


class ExecutionStore:
    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self._redis = redis
        self._ttl = ttl_s
        self._transitions = Transitions(redis)

    async def submit(self, job: wire.Job) -> None:
        """Record the execution as queued and append it to its language's stream, atomically."""
        key = keys.execution(job.execution_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            # No TTL yet: a job may wait long (an engine outage); the end sets the TTL.
            pipe.hset(
                key, mapping={"status": Status.QUEUED.value, "language": job.language, "attempt": 0}
            )
            pipe.xadd(keys.job_stream(job.language), {"job": wire.encode(job)})
            await pipe.execute()

    async def get(self, execution_id: str) -> Record | None:
        fields = cast(dict[bytes, bytes], await self._redis.hgetall(keys.execution(execution_id)))
        return _record(execution_id, fields)

    async def snapshot(self, execution_id: str) -> tuple[Record | None, list[bytes]]:
        """The record and its replay log, read atomically in one round trip."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.execution(execution_id))
            pipe.lrange(keys.output_log(execution_id), 0, -1)
            fields, frames = await pipe.execute()
        return _record(execution_id, fields), frames

    async def output(self, execution_id: str, start: int = 0) -> list[bytes]:
        """Encoded output frames from `seq == start` on."""
        frames = await self._redis.lrange(keys.output_log(execution_id), start, -1)
        return cast(list[bytes], frames)

    async def abort(self, record: Record) -> str:
        """ABORTED_NOW (it was queued), KILL_SENT (its worker kills it), or its end status."""
        return await self._transitions.abort(record.execution_id, record.language, self._ttl)

    async def send_control(self, execution_id: str, message: bytes) -> None:
        """Queue a stdin message for the execution's worker (kept while it is still queued)."""
        key = keys.control(execution_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, message)
            pipe.expire(key, self._ttl)
            await pipe.execute()

    async def queue_depths(self) -> dict[str, int]:
        """Accepted jobs no worker has claimed yet, per language."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for language in RUNTIMES:
                pipe.xlen(keys.job_stream(language))
                pipe.xpending(keys.job_stream(language), keys.WORKER_GROUP)
            replies = await pipe.execute(raise_on_error=False)
        depths = {}
        for i, language in enumerate(RUNTIMES):
            length, pending = replies[2 * i], replies[2 * i + 1]
            claimed = pending["pending"] if isinstance(pending, dict) else 0
            depths[language] = max(0, int(length) - claimed) if isinstance(length, int) else 0
        return depths

    async def ping(self) -> bool:
        return bool(await self._redis.ping())


def _record(execution_id: str, fields: dict[bytes, bytes]) -> Record | None:
    if not fields:
        return None
    raw = fields.get(b"result")
    return Record(
        execution_id=execution_id,
        language=fields[b"language"].decode(),
        status=Status(fields[b"status"].decode()),
        result=wire.decode_result(raw) if raw else None,
    )
