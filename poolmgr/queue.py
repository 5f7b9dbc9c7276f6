"""The job streams as a worker sees them: read through the group, ack, retry, dead-letter."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.typing import KeyT, StreamIdT

from poolmgr.redis_retry import until_redis
from runtimes import keys, wire

_Rows = list[dict[str, bytes]]
BLOCK_MS = 1000
CLAIM_IDLE_MS = 1000  # two recovering workers never both claim the same entry


class Entry(NamedTuple):
    stream: str
    entry_id: str
    job: wire.Job


def _entries(reply: object) -> list[Entry]:
    out = []
    for stream, entries in cast(
        list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], reply or []
    ):
        for entry_id, fields in entries:
            out.append(Entry(stream.decode(), entry_id.decode(), wire.decode_job(fields[b"job"])))
    return out


class JobQueue:
    """One worker's view of the language streams and their consumer group."""

    def __init__(self, redis: Redis, worker_id: str) -> None:
        self._redis = redis
        self.worker_id = worker_id

    async def ensure_groups(self, languages: list[str]) -> None:
        for language in languages:
            try:
                await self._redis.xgroup_create(
                    keys.job_stream(language), keys.WORKER_GROUP, id="0", mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read(self, languages: list[str]) -> Entry | None:
        """The next new job of any of `languages`, waiting up to a second."""
        streams: dict[KeyT, StreamIdT] = {keys.job_stream(lang): ">" for lang in languages}
        reply = await self._redis.xreadgroup(
            keys.WORKER_GROUP, self.worker_id, streams, count=1, block=BLOCK_MS
        )
        found = _entries(reply)
        return found[0] if found else None

    async def ack(self, entry: Entry) -> None:
        """The job is final: drop it from the group's pending list and from the stream."""

        async def ack() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(entry.stream, keys.WORKER_GROUP, entry.entry_id)
                pipe.xdel(entry.stream, entry.entry_id)
                await pipe.execute()

        await until_redis(ack, "acknowledging a job")

    async def retry(self, entry: Entry) -> None:
        """Queue the job again as its next attempt, then ack this entry."""
        job = dataclasses.replace(entry.job, attempt=entry.job.attempt + 1)
        await self._redis.xadd(entry.stream, {"job": wire.encode(job)})
        await self.ack(entry)

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        await self._redis.xadd(
            keys.DEAD_LETTERS, {"job": wire.encode(entry.job), "reason": reason}, maxlen=10_000
        )

    async def pending(self, language: str) -> list[tuple[str, str]]:
        """`(entry id, consumer)` of this language's claimed, unacknowledged entries."""
        rows = await self._redis.xpending_range(
            keys.job_stream(language), keys.WORKER_GROUP, min="-", max="+", count=1000
        )
        return [(r["message_id"].decode(), r["consumer"].decode()) for r in cast(_Rows, rows)]

    async def claim(
        self, language: str, entry_ids: list[str], min_idle_ms: int = CLAIM_IDLE_MS
    ) -> list[Entry]:
        """Take over entries of a dead consumer; those another worker took first are skipped."""
        stream = keys.job_stream(language)
        ids: list[StreamIdT] = list(entry_ids)
        reply = await self._redis.xclaim(
            stream, keys.WORKER_GROUP, self.worker_id, min_idle_ms, ids
        )
        return _entries([(stream.encode(), [r for r in reply if r[1] is not None])])
