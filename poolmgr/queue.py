"""The job streams as a worker sees them: read through the group, ack, retry, dead-letter."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, NamedTuple, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT, KeyT, StreamIdT

from poolmgr.redis_retry import until_redis
from runtimes import keys, wire

log = logging.getLogger(__name__)

BLOCK_MS = 1000
CLAIM_IDLE_MS = 1000  # two recovering workers never both claim the same entry


class Pending(NamedTuple):
    entry_id: str
    consumer: str
    idle_ms: int


class Entry(NamedTuple):
    stream: str
    entry_id: str
    job: wire.Job


_Raw = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]


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
        found = await self._decode(cast(_Raw, reply or []))
        return found[0] if found else None

    async def _decode(self, reply: _Raw) -> list[Entry]:
        """Entries as jobs; one that cannot be decoded is dead-lettered, not retried forever."""
        out = []
        for stream, entries in reply:
            for entry_id, fields in entries:
                try:
                    job = wire.decode_job(fields[b"job"])
                except (KeyError, TypeError, ValueError) as exc:
                    log.error("undecodable job %s on %s: %s", entry_id, stream, exc)
                    await self._bury(stream.decode(), entry_id.decode(), fields, str(exc))
                    continue
                out.append(Entry(stream.decode(), entry_id.decode(), job))
        return out

    async def _bury(self, stream: str, entry_id: str, fields: dict[bytes, bytes], why: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            buried: dict[FieldT, EncodableT] = dict(fields.items())
            buried[b"reason"] = why.encode()
            pipe.xadd(keys.DEAD_LETTERS, buried, maxlen=10_000)
            pipe.xack(stream, keys.WORKER_GROUP, entry_id)
            pipe.xdel(stream, entry_id)
            await pipe.execute()

    async def ack(self, entry: Entry) -> None:
        """The job is final: drop it from the group's pending list and from the stream."""

        async def ack() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(entry.stream, keys.WORKER_GROUP, entry.entry_id)
                pipe.xdel(entry.stream, entry.entry_id)
                await pipe.execute()

        await until_redis(ack, "acknowledging a job")

    async def retry(self, entry: Entry) -> None:
        """Queue the job again as its next attempt and ack this entry, in one transaction."""
        job = dataclasses.replace(entry.job, attempt=entry.job.attempt + 1)

        async def swap() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(entry.stream, {"job": wire.encode(job)})
                pipe.xack(entry.stream, keys.WORKER_GROUP, entry.entry_id)
                pipe.xdel(entry.stream, entry.entry_id)
                await pipe.execute()

        await until_redis(swap, "re-queueing a job")

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        await self._redis.xadd(
            keys.DEAD_LETTERS, {"job": wire.encode(entry.job), "reason": reason}, maxlen=10_000
        )

    async def pending(self, language: str) -> list[Pending]:
        """This language's claimed, unacknowledged entries."""
        rows = await self._redis.xpending_range(
            keys.job_stream(language), keys.WORKER_GROUP, min="-", max="+", count=1000
        )
        return [
            Pending(
                r["message_id"].decode(), r["consumer"].decode(), int(r["time_since_delivered"])
            )
            for r in cast(list[dict[str, Any]], rows)
        ]

    async def claim(
        self, language: str, entry_ids: list[str], min_idle_ms: int = CLAIM_IDLE_MS
    ) -> list[Entry]:
        """Take over entries of a dead consumer; those another worker took first are skipped."""
        stream = keys.job_stream(language)
        ids: list[StreamIdT] = list(entry_ids)
        reply = await self._redis.xclaim(
            stream, keys.WORKER_GROUP, self.worker_id, min_idle_ms, ids
        )
        taken = [r for r in cast(list[tuple[bytes, dict[bytes, bytes] | None]], reply) if r[1]]
        return await self._decode(cast(_Raw, [(stream.encode(), taken)]))
