"""The job streams as a worker sees them: read through the group (premium first, standard
never starved), ack, retry, dead-letter."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, NamedTuple, cast

import anyio
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT, KeyT, StreamIdT

from poolmgr.redis_retry import until_redis
from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.transitions import Transitions

log = logging.getLogger(__name__)

BLOCK_MS = 1000
CLAIM_IDLE_MS = 1000  # two recovering workers never both claim the same entry
INVALID_JOB = "invalid_job"
# While both priorities of a language have jobs waiting, at least one claim of the language
# in this many is a standard job.
STANDARD_EVERY = 4

# KEYS: stream, execution. ARGV: job, old entry id, group. The next attempt's entry replaces
# the old one (and is recorded on the execution for the sweeper); a re-sent swap whose old
# entry is already gone queues nothing, so a lost reply never queues the job twice.
_SWAP = """
if #redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2]) == 0 then
  redis.call('XACK', KEYS[1], ARGV[3], ARGV[2])
  return 'gone'
end
local entry = redis.call('XADD', KEYS[1], '*', 'job', ARGV[1])
redis.call('HSET', KEYS[2], 'entry', entry)
redis.call('XACK', KEYS[1], ARGV[3], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return entry
"""

# KEYS: the language's streams. ARGV: group, consumer. A consumer (found dead by its
# heartbeat) is forgotten only while it owns no pending entry of any of them, checked in the
# same step: deleting a consumer drops its pending entries, which would then never be
# settled. A worker that comes back under that name meanwhile is a new consumer of the
# group at its next read.
_FORGET = """
for i = 1, #KEYS do
  if #redis.call('XPENDING', KEYS[i], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
end
for i = 1, #KEYS do redis.call('XGROUP', 'DELCONSUMER', KEYS[i], ARGV[1], ARGV[2]) end
return 1
"""


def _by_language(ids: dict[KeyT, StreamIdT]) -> dict[str, dict[KeyT, StreamIdT]]:
    """Stream ids grouped by the language (the hash slot) of their stream."""
    parts: dict[str, dict[KeyT, StreamIdT]] = {}
    for stream, at in ids.items():
        parts.setdefault(keys.stream_language(_text(cast(bytes | str, stream))), {})[stream] = at
    return parts


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _ref(stream: str, entry_id: str) -> str:
    return f"{stream} {entry_id}"


class Pending(NamedTuple):
    stream: str
    entry_id: str
    consumer: str
    idle_ms: int

    @property
    def ref(self) -> str:
        """The entry's name among all streams (its id is unique in its own stream only)."""
        return _ref(self.stream, self.entry_id)


class Entry(NamedTuple):
    stream: str
    entry_id: str
    job: wire.Job

    @property
    def ref(self) -> str:
        """The entry's name among all streams (its id is unique in its own stream only)."""
        return _ref(self.stream, self.entry_id)


_Raw = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]


class Turns:
    """Which priority each language's next read tries first: premium, except after
    STANDARD_EVERY - 1 premium claims in a row, when standard goes first (once it has
    nothing waiting, the count starts over)."""

    def __init__(self) -> None:
        self._premium_run: dict[str, int] = {}

    def order(self, language: str) -> tuple[str, ...]:
        if self._premium_run.get(language, 0) >= STANDARD_EVERY - 1:
            return tuple(reversed(keys.PRIORITIES))
        return keys.PRIORITIES

    def claimed(self, job: wire.Job) -> None:
        run = self._premium_run.get(job.language, 0)
        self._premium_run[job.language] = run + 1 if job.priority == "premium" else 0

    def missed(self, language: str, priority: str) -> None:
        """`language` had no `priority` job waiting."""
        if priority == "standard":
            self._premium_run[language] = 0


class JobQueue:
    """One worker's view of the language streams and their consumer group."""

    def __init__(
        self,
        redis: Redis,
        worker_id: str,
        transitions: Transitions,
        result_ttl_s: int,
        sharded: bool = False,
    ) -> None:
        """`sharded`: Redis is a cluster, where one command reads streams of one language
        (one hash slot) only."""
        self._redis = redis
        self._sharded = sharded
        self.worker_id = worker_id
        self._transitions = transitions
        self._ttl = result_ttl_s
        self._swap = redis.register_script(_SWAP)
        self._forget = redis.register_script(_FORGET)
        self._turns = Turns()
        # The languages whose jobs ended the last `read`'s wait without being claimed.
        self.woken: list[str] = []

    async def ensure_groups(self, languages: list[str]) -> None:
        for stream in (s for language in languages for s in keys.job_streams(language)):
            try:
                await self._redis.xgroup_create(stream, keys.WORKER_GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read(self, languages: list[str], waited: list[str] | None = None) -> list[Entry]:
        """New jobs, one of each of `languages` that has any, in priority order (see `Turns`);
        when none has any, a wait of up to a second for a job of any language of `waited`
        (default: `languages`). The caller passes as `languages` only languages whose
        weights all fit together, and as `waited` those that each fit alone.

        Every entry of the reply is this worker's now: the caller must handle them all.

        When `waited` is `languages`, the wait is itself a blocking group read, which claims
        what wakes it: one entry per language, but for a job of each priority of one
        language that both came within the wait (Redis applies COUNT per stream), the second
        of which the caller starts once room frees. When `waited` has more, the wait claims
        nothing, as one group read of all their streams would claim a job of each that has
        any, whether or not the worker has room for them: it only returns, with no entry,
        as soon as any of them has a job no worker was given yet, and `woken` names those
        languages for the caller to read next.
        """
        self.woken = []
        entries = await self._read_in_turn(languages)
        if not entries:
            wait_on = languages if waited is None else waited
            if set(wait_on) <= set(languages) and not self._sharded:
                streams = [s for language in wait_on for s in keys.job_streams(language)]
                entries = await self._read(streams, BLOCK_MS)
            else:
                self.woken = await self._wait(wait_on)
        for entry in entries:
            self._turns.claimed(entry.job)
        return entries

    async def _wait(self, languages: list[str]) -> list[str]:
        """Block up to BLOCK_MS until a stream of `languages` has an entry past the last one
        the group delivered (one there already answers at once), claiming none of them; the
        languages that have one, in the order of the reply."""
        streams = {s: language for language in languages for s in keys.job_streams(language)}
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xinfo_groups(stream)
            infos = await pipe.execute(raise_on_error=False)
        ids: dict[KeyT, StreamIdT] = {}
        for stream, info in zip(streams, infos, strict=True):
            # A stream or group lost with a Redis restart: any entry wakes the worker, whose
            # next group read finds the group missing and creates it again.
            delivered = "0-0"
            for group in info if isinstance(info, list) else []:
                if group["name"] in (keys.WORKER_GROUP, keys.WORKER_GROUP.encode()):
                    delivered = group["last-delivered-id"]
            ids[stream] = delivered
        woken = [streams[_text(stream)] for stream, _ in await self._first_of(ids)]
        return list(dict.fromkeys(woken))

    async def _first_of(self, ids: dict[KeyT, StreamIdT]) -> _Raw:
        """XREAD of the streams past `ids`, blocking up to BLOCK_MS: one command, or on a
        cluster one per language side by side, the first to answer ending the others (they
        claim nothing, so nothing is lost)."""
        reply: _Raw = []
        if not self._sharded:
            return cast(_Raw, await self._redis.xread(ids, count=1, block=BLOCK_MS) or [])

        failed: list[Exception] = []

        async def one(part: dict[KeyT, StreamIdT], scope: anyio.CancelScope) -> None:
            try:
                got = cast(_Raw, await self._redis.xread(part, count=1, block=BLOCK_MS) or [])
            except Exception as exc:  # raised below as itself, as one command's would be
                failed.append(exc)
                got = []
            if got or failed:
                reply.extend(got)
                scope.cancel()

        async with anyio.create_task_group() as tg:
            for part in _by_language(ids).values():
                tg.start_soon(one, part, tg.cancel_scope)
        if failed and not reply:
            raise failed[0]
        return reply

    async def _read_in_turn(self, languages: list[str]) -> list[Entry]:
        """Without waiting: each language's first choice of stream, then for the languages
        that had nothing there, their next choice, and so on."""
        orders = {language: self._turns.order(language) for language in languages}
        entries: list[Entry] = []
        left = languages
        for turn in range(len(keys.PRIORITIES)):
            if not left:
                break
            streams = {keys.job_stream(lang, orders[lang][turn]): lang for lang in left}
            got = await self._read(list(streams), None)
            served = {streams[entry.stream] for entry in got}
            for language in left:
                if language not in served:
                    self._turns.missed(language, orders[language][turn])
            entries += got
            left = [language for language in left if language not in served]
        return entries

    async def _read(self, streams: list[str], block_ms: int | None) -> list[Entry]:
        """At most one new entry of each stream, waiting up to `block_ms` if given (only
        when not sharded); on a cluster, one command per language."""
        ids: dict[KeyT, StreamIdT] = dict.fromkeys(streams, ">")
        parts = list(_by_language(ids).values()) if self._sharded else [ids]
        entries = []
        for part in parts:
            reply = await self._redis.xreadgroup(
                keys.WORKER_GROUP, self.worker_id, part, count=1, block=block_ms
            )
            entries += await self._decode(cast(_Raw, reply or []))
        return entries

    async def _decode(self, reply: _Raw) -> list[Entry]:
        """Entries as jobs; one that cannot be decoded is dead-lettered, not retried forever."""
        out = []
        for stream, entries in reply:
            for entry_id, fields in entries:
                try:
                    job = wire.decode_job(fields[b"job"])
                except (KeyError, ValueError) as exc:
                    log.error("undecodable job %s on %s: %s", entry_id, stream, exc)
                    await self._bury(stream.decode(), entry_id.decode(), fields, str(exc))
                    continue
                out.append(Entry(stream.decode(), entry_id.decode(), job))
        return out

    async def _bury(self, stream: str, entry_id: str, fields: dict[bytes, bytes], why: str) -> None:
        """Dead-letter an undecodable entry; its execution, if it names one, ends `failed`."""
        identity = wire.job_identity(fields.get(b"job", b""))
        if identity is not None:
            execution_id, language, attempt = identity
            result = wire.Result(execution_id, language, Status.FAILED, failure_code=INVALID_JOB)
            token = f"{self.worker_id}:{entry_id}"
            await self._transitions.finish(attempt, token, result, self._ttl)
        async with self._redis.pipeline(transaction=True) as pipe:
            buried: dict[FieldT, EncodableT] = dict(fields.items())
            buried[b"reason"] = why.encode()
            pipe.xadd(keys.dead_letters(keys.stream_language(stream)), buried, maxlen=10_000)
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
        """Queue the job again as its next attempt, replacing this entry, in one step."""
        job = dataclasses.replace(entry.job, attempt=entry.job.attempt + 1)
        keys_ = [entry.stream, keys.execution(job.execution_id)]
        args: list[bytes | str] = [wire.encode(job), entry.entry_id, keys.WORKER_GROUP]
        await until_redis(lambda: self._swap(keys=keys_, args=args), "re-queueing a job")

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        await self._redis.xadd(
            keys.dead_letters(entry.job.language),
            {"job": wire.encode(entry.job), "reason": reason},
            maxlen=10_000,
        )

    async def pending(self, language: str) -> list[Pending]:
        """This language's claimed, unacknowledged entries, of every priority."""
        pending = []
        for stream in keys.job_streams(language):
            rows = await self._redis.xpending_range(
                stream, keys.WORKER_GROUP, min="-", max="+", count=1000
            )
            pending += [
                Pending(
                    stream,
                    r["message_id"].decode(),
                    r["consumer"].decode(),
                    int(r["time_since_delivered"]),
                )
                for r in cast(list[dict[str, Any]], rows)
            ]
        return pending

    async def claim(
        self, stream: str, entry_ids: list[str], min_idle_ms: int = CLAIM_IDLE_MS
    ) -> list[Entry]:
        """Take over entries of a dead consumer; those another worker took first are skipped."""
        ids: list[StreamIdT] = list(entry_ids)
        reply = await self._redis.xclaim(
            stream, keys.WORKER_GROUP, self.worker_id, min_idle_ms, ids
        )
        taken = [r for r in cast(list[tuple[bytes, dict[bytes, bytes] | None]], reply) if r[1]]
        return await self._decode(cast(_Raw, [(stream.encode(), taken)]))

    async def forget_dead_consumers(self, language: str) -> list[str]:
        """Remove the language's consumers that are dead and own nothing; their names."""
        streams = keys.job_streams(language)
        names: dict[str, bool] = {}  # name -> owns nothing
        for stream in streams:
            for row in await self._redis.xinfo_consumers(stream, keys.WORKER_GROUP):
                raw = row["name"]
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
                names[name] = names.get(name, True) and int(row["pending"]) == 0
        forgotten = []
        for name, idle in names.items():
            if name == self.worker_id or not idle:
                continue
            if await self._redis.exists(keys.worker_heartbeat(name)):
                continue  # alive: it may have pending entries again any moment
            if await self._forget(keys=streams, args=[keys.WORKER_GROUP, name]):
                forgotten.append(name)
        return forgotten
