"""Atomic status and output writes in Redis, shared by the app and the workers.

Every write is a script that first checks the execution is not terminal yet, so an
execution reaches exactly one terminal status however the app, its worker and a recovering
worker race to end it. Every script is idempotent for its caller: a script that ran but
whose reply was lost (a Redis restart, a timeout, the client's own retry) answers `ok`
when it is sent again, because it recognises its own effect (the owner token of the
handling worker, the attempt it bumped, the last output `seq` it stored).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError

from runtimes import keys, wire
from runtimes.lifecycle import TERMINAL, Status

OK = "ok"
ABORTED_NOW, KILL_SENT = "aborted-now", "kill-sent"
ALIVE, ORPHAN = "alive", "orphan"
ENDED_NOW = "ended-now"  # end_queued: it was queued, and is ended now
BUSY, SHED = "busy", "shed"  # submit refused: the user's cap, the language's queue depth
PREMIUM_DEPTH_FACTOR = 2  # premium jobs are shed only at this many times the depth limit
# A user's set of executions lives this long after their last submit: longer than any
# execution stays unended, so it only collects the sets of users who stopped submitting.
USER_ACTIVE_TTL_S = 24 * 3600
# A slot taken whose execution has no record yet is being submitted, unless it is older than
# this: then its submit was lost (the app died between the two steps) and the slot is free.
# A submit refuses to queue SUBMIT_LATE_S after its slot was taken, so none is queued after
# its slot was given away; the margin covers the clocks of two cluster nodes.
RESERVATION_GRACE_S = 30
SUBMIT_LATE_S = 20
LATE = "late"
STALE = "stale"  # the write came from an attempt that was handed to another worker
_TERMINAL = "{" + ", ".join(f'["{s.value}"] = true' for s in sorted(TERMINAL)) + "}"
# Every script starts here: a missing execution is left alone.
_CURRENT = f"""
local terminal = {_TERMINAL}
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return 'missing' end
"""
_NOT_ENDED = "if terminal[current] then return current end\n"
# Worker writes carry the job's attempt (ARGV[1]): a write from a superseded attempt (its
# worker was presumed dead and the job re-queued) is refused.
_FENCE = """
local attempt = tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0')
if attempt ~= tonumber(ARGV[1]) then return 'stale' end
"""
# ...and the owner token (ARGV[2]) of the worker handling this attempt: a duplicated stream
# entry of the same attempt cannot start it twice, nor write output beside it.
_OWNER = "local owner = redis.call('HGET', KEYS[1], 'owner')\n"

# KEYS: execution, channel. ARGV: attempt, owner, then (status, event) pairs, applied in order.
_ADVANCE = (
    _CURRENT
    + _NOT_ENDED
    + _FENCE
    + _OWNER
    + """
local rank = {queued = 0, preparing = 1, running = 2}
if owner ~= ARGV[2] then
  if current ~= 'queued' then return 'taken' end
  redis.call('HSET', KEYS[1], 'owner', ARGV[2])
end
for i = 3, #ARGV, 2 do
  if rank[ARGV[i]] > rank[current] then
    redis.call('HSET', KEYS[1], 'status', ARGV[i])
    redis.call('PUBLISH', KEYS[2], ARGV[i + 1])
    current = ARGV[i]
  end
end
return 'ok'
"""
)

# KEYS: execution, output log, channel. ARGV: attempt, owner, ttl, first seq, frames...
# Frames below the stored `seq` were appended by an earlier send of the same call.
_APPEND = (
    _CURRENT
    + _NOT_ENDED
    + _FENCE
    + _OWNER
    + """
if owner ~= ARGV[2] then return 'taken' end
local nxt = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local first = tonumber(ARGV[4])
for i = 5, #ARGV do
  local seq = first + i - 5
  if seq == nxt then
    redis.call('RPUSH', KEYS[2], ARGV[i])
    redis.call('PUBLISH', KEYS[3], ARGV[i])
    nxt = seq + 1
  end
end
redis.call('HSET', KEYS[1], 'seq', nxt)
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 'ok'
"""
)

# KEYS: execution, output log, channel, control, active.
# ARGV: attempt, finisher token, status, result, exit event, ttl, execution id.
_FINISH = (
    _CURRENT
    + """
if terminal[current] then
  if redis.call('HGET', KEYS[1], 'finished_by') == ARGV[2] then return 'ok' end
  return current
end
"""
    + _FENCE
    + """
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'result', ARGV[4], 'exit', ARGV[5],
           'finished_by', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('DEL', KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[7])
redis.call('PUBLISH', KEYS[3], ARGV[5])
return 'ok'
"""
)

# KEYS: execution, output log, channel. ARGV: attempt, queued status event.
# Back to the queue, as the next attempt, only while no output has reached the user.
_REQUEUE = (
    _CURRENT
    + """
local attempt = tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0')
if current == 'queued' and attempt == tonumber(ARGV[1]) + 1 then return 'ok' end
"""
    + _NOT_ENDED
    + """
if attempt ~= tonumber(ARGV[1]) then return 'stale' end
if redis.call('LLEN', KEYS[2]) > 0 then return 'has_output' end
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempt', attempt + 1)
redis.call('HDEL', KEYS[1], 'owner')
redis.call('PUBLISH', KEYS[3], ARGV[2])
return 'ok'
"""
)


# Sets `stream` to the stream holding the execution's entry, as its record names it (a
# record from before priorities names none: the standard stream, KEYS[first]). Every stream
# of the language is passed from KEYS[first] on, so only declared keys are touched.
def _entry_stream(first: int) -> str:
    return f"local stream = redis.call('HGET', KEYS[1], 'stream') or KEYS[{first}]\n"


def _end_while_queued(status: str, ttl: int, eid: int, token: int) -> str:
    """Lua that ends a queued execution (KEYS: execution, channel, control, active; ARGV[1]
    the result, ARGV[2] the exit event; `stream` its job's stream): the record, its expiry,
    the control list, the active set, its stream entry, and the exit event published."""
    return f"""
redis.call('HSET', KEYS[1], 'status', {status}, 'result', ARGV[1], 'exit', ARGV[2],
           'finished_by', ARGV[{token}])
redis.call('EXPIRE', KEYS[1], ARGV[{ttl}])
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[{eid}])
local entry = redis.call('HGET', KEYS[1], 'entry')
if entry then redis.call('XDEL', stream, entry) end
redis.call('PUBLISH', KEYS[2], ARGV[2])
"""


# KEYS: execution, channel, control, active, then the language's streams (standard first).
# ARGV: aborted result, exit event, kill message, ttl, execution id, token of this abort.
# A queued execution ends here and now, and its stream entry goes, so no worker spends a
# container on it; a started one is killed by its worker.
_ABORT = (
    _CURRENT
    + """
if current == 'aborted' and redis.call('HGET', KEYS[1], 'finished_by') == ARGV[6] then
  return 'aborted-now'
end
"""
    + _NOT_ENDED
    + _entry_stream(5)
    + """
if current == 'queued' then
"""
    + _end_while_queued(status="'aborted'", ttl=4, eid=5, token=6)
    + """
  return 'aborted-now'
end
redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[4])
return 'kill-sent'
"""
)

# KEYS: execution, channel, control, active, then the language's streams (standard first).
# ARGV: result, exit event, ttl, execution id, finisher token, terminal status.
# Ends the execution only while it is queued, as abort's queued branch does (its stream
# entry goes with it); one a worker has started is left to its worker.
_END_QUEUED = (
    _CURRENT
    + """
if terminal[current] and redis.call('HGET', KEYS[1], 'finished_by') == ARGV[5] then
  return 'ended-now'
end
if current ~= 'queued' then return current end
"""
    + _entry_stream(5)
    + _end_while_queued(status="ARGV[6]", ttl=3, eid=4, token=5)
    + """
return 'ended-now'
"""
)

# KEYS: execution, job stream, active, then every stream of the language. ARGV: job,
# language, accepted at, execution id, stdin bytes, interactive (1/0), user, priority, depth
# limit, group, when its user's slot was taken (Redis time; 0: no cap), the latest age of
# that slot.
# Recorded as queued and appended to its stream in one step, with the entry id; a run that
# is not interactive has its stdin closed from the start. A re-sent submit finds its
# execution recorded and queues nothing more. A submit that comes later than that after its
# slot was taken queues nothing ('late'): its slot may have been found lost and given to
# another run. The depth limit (0: none): jobs of the language that no worker has claimed
# yet, of both priorities.
_SUBMIT = """
local recorded = redis.call('HGET', KEYS[1], 'entry')
if recorded then return {recorded, 0} end
local taken = tonumber(ARGV[11])
if taken > 0 and tonumber(redis.call('TIME')[1]) - taken > tonumber(ARGV[12]) then
  return {'late', 0}
end
local waiting, ahead = 0, 0
for i = 4, #KEYS do
  local pending = redis.pcall('XPENDING', KEYS[i], ARGV[10])
  local claimed = 0
  if type(pending) == 'table' and not pending.err then claimed = pending[1] end
  local unclaimed = math.max(0, redis.call('XLEN', KEYS[i]) - claimed)
  waiting = waiting + unclaimed
  if ARGV[8] ~= 'premium' or KEYS[i] == KEYS[2] then ahead = ahead + unclaimed end
end
local limit = tonumber(ARGV[9])
if limit > 0 and waiting >= limit then return {'shed', 0} end
local entry = redis.call('XADD', KEYS[2], '*', 'job', ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'queued', 'language', ARGV[2], 'attempt', 0,
           'entry', entry, 'stream', KEYS[2], 'user', ARGV[7], 'priority', ARGV[8],
           'stdin_bytes', ARGV[5])
if ARGV[6] == '0' then redis.call('HSET', KEYS[1], 'stdin_closed', 1) end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return {entry, ahead}
"""

# KEYS: the user's unended executions. ARGV: execution id, cap, ttl of the set, grace, the
# number of ids then given as ended, those ids, then the ids found without a record.
# Takes one of the user's `cap` slots for the execution, scored by Redis's own clock, after
# dropping the ended ones, and those without a record whose slot was taken more than the
# grace ago (their submit was lost: the app died between the two steps, or it came too late
# and queued nothing); the reply is the slot's time. A re-sent reservation finds its own.
# The user's keys have a slot of their own (their executions are of every language), so
# which members have ended is read first, by the caller, from their records.
_RESERVE = """
local own = redis.call('ZSCORE', KEYS[1], ARGV[1])
if own then return {'ok', own} end
local now = tonumber(redis.call('TIME')[1])
local ended = tonumber(ARGV[5])
for i = 6, 5 + ended do redis.call('ZREM', KEYS[1], ARGV[i]) end
for i = 6 + ended, #ARGV do
  local taken = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if taken and now - tonumber(taken) > tonumber(ARGV[4]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return {'busy', 0} end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {'ok', now}
"""

# KEYS: execution, active, then the language's streams (standard first). ARGV: execution id.
# An execution that is not terminal must have its job in the stream (queued or pending with
# a worker); one that has not is an orphan, answered with its attempt for `finish`.
_SWEEP = (
    f"""
local terminal = {_TERMINAL}
local current = redis.call('HGET', KEYS[1], 'status')
if not current or terminal[current] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return current or 'missing'
end
"""
    + _entry_stream(3)
    + """
local entry = redis.call('HGET', KEYS[1], 'entry')
if not entry or #redis.call('XRANGE', stream, entry, entry) > 0 then return 'alive' end
return 'orphan:' .. (redis.call('HGET', KEYS[1], 'attempt') or '0')
"""
)

KILL = b'{"type":"kill"}'


class Transitions:
    """The scripts, registered once per client."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._submit = redis.register_script(_SUBMIT)
        self._reserve = redis.register_script(_RESERVE)
        self._advance = redis.register_script(_ADVANCE)
        self._append = redis.register_script(_APPEND)
        self._finish = redis.register_script(_FINISH)
        self._requeue = redis.register_script(_REQUEUE)
        self._abort = redis.register_script(_ABORT)
        self._sweep = redis.register_script(_SWEEP)
        self._end_queued = redis.register_script(_END_QUEUED)

    async def submit(self, job: wire.Job, *, max_concurrent: int = 0, max_depth: int = 0) -> str:
        """Record `job` as queued and queue it on its priority's stream; its entry id.

        Or, queueing nothing: BUSY when the user already has `max_concurrent` executions
        not ended, SHED when `max_depth` jobs of the language wait unclaimed (premium jobs:
        PREMIUM_DEPTH_FACTOR times that). 0 turns either check off.
        """
        reply, _ = await self.submit_counted(
            job, max_concurrent=max_concurrent, max_depth=max_depth
        )
        return reply

    async def submit_counted(
        self, job: wire.Job, *, max_concurrent: int = 0, max_depth: int = 0
    ) -> tuple[str, int]:
        """`submit`, and how many unclaimed jobs of its language will be claimed before it
        (premium ones only, for a premium job), counted in the same step.

        The user's slot is taken first, and given back if the job is not queued: a slot is
        held while its execution is not terminal, however it ends (it is found ended here,
        by the next submit that needs the room). Raises RedisTimeoutError, queueing nothing,
        when the submit came SUBMIT_LATE_S after its slot was taken.
        """
        eid = job.execution_id
        taken_at = 0
        if max_concurrent > 0:
            slot = await self._take_slot(job, max_concurrent)
            if slot is None:
                return BUSY, 0
            taken_at = slot
        keys_ = [
            keys.execution(eid),
            keys.job_stream(job.language, job.priority),
            keys.active(job.language),
            *keys.job_streams(job.language),
        ]
        depth_limit = max_depth * (PREMIUM_DEPTH_FACTOR if job.priority == "premium" else 1)
        args: list[bytes | str | float] = [
            wire.encode(job),
            job.language,
            job.enqueued_at,
            eid,
            len(job.stdin.encode()),
            int(job.interactive),
            job.user,
            job.priority,
            depth_limit,
            keys.WORKER_GROUP,
            taken_at,
            SUBMIT_LATE_S,
        ]
        raw, ahead = await self._submit(keys=keys_, args=args)
        reply = _text(raw)
        if reply in (SHED, LATE) and max_concurrent > 0:
            await self._redis.zrem(keys.user_active(job.user), eid)
        if reply == LATE:
            raise RedisTimeoutError(f"the submit came over {SUBMIT_LATE_S} s after its slot")
        return reply, int(ahead)

    async def _take_slot(self, job: wire.Job, cap: int) -> int | None:
        """When one of the user's `cap` slots was taken for `job` (Redis time, seconds); None
        when all are held by executions not known to have ended."""
        key = keys.user_active(job.user)
        args: list[str | int | float] = [
            job.execution_id, cap, USER_ACTIVE_TTL_S, RESERVATION_GRACE_S, 0
        ]  # fmt: skip
        verdict, taken = await self._reserve(keys=[key], args=args)
        if _text(verdict) != OK:
            ended, missing = await self._ended(key)
            if not ended and not missing:
                return None
            args[4] = len(ended)
            verdict, taken = await self._reserve(keys=[key], args=[*args, *ended, *missing])
        return int(float(taken)) if _text(verdict) == OK else None

    async def _ended(self, key: str) -> tuple[list[str], list[str]]:
        """The members of a user's set whose execution has ended (or whose record expired),
        and those that have no record (yet, or ever: `_RESERVE` judges by their age)."""
        members = [m.decode() for m in cast(list[bytes], await self._redis.zrange(key, 0, -1))]
        async with self._redis.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.hget(keys.execution(member), "status")
            statuses = cast(list[bytes | None], await pipe.execute())
        ended = [m for m, s in zip(members, statuses, strict=True) if s and s.decode() in TERMINAL]
        missing = [m for m, s in zip(members, statuses, strict=True) if s is None]
        return ended, missing

    async def advance(self, job: wire.Job, owner: str, statuses: list[Status]) -> str:
        """Move through `statuses`; `"ok"`, or why not (its end status, stale, taken)."""
        args: list[bytes | str | int] = [job.attempt, owner]
        for status in statuses:
            args += [status.value, wire.encode(wire.StatusEvent(status))]
        keys_ = [keys.execution(job.execution_id), keys.events(job.execution_id)]
        return _text(await self._advance(keys=keys_, args=args))

    async def append(
        self, job: wire.Job, owner: str, first_seq: int, frames: Sequence[bytes], ttl_s: int
    ) -> str:
        """Append output frames `first_seq`, `first_seq + 1`, ... and publish them."""
        eid = job.execution_id
        keys_ = [keys.execution(eid), keys.output_log(eid), keys.events(eid)]
        args: list[bytes | str | int] = [job.attempt, owner, ttl_s, first_seq, *frames]
        return _text(await self._append(keys=keys_, args=args))

    async def finish(self, attempt: int, token: str, result: wire.Result, ttl_s: int) -> str:
        """Record the result and publish `exit`; `"ok"`, or why not (end status, stale).

        `token` names the finisher, so a re-sent finish recognises its own result.
        """
        eid = result.execution_id
        keys_ = [
            keys.execution(eid),
            keys.output_log(eid),
            keys.events(eid),
            keys.control(eid),
            keys.active(result.language),
        ]
        exit_event = wire.encode(wire.ExitEvent.of(result))
        args: list[bytes | str | int] = [
            attempt,
            token,
            result.status.value,
            wire.encode(result),
            exit_event,
            ttl_s,
            eid,
        ]
        return _text(await self._finish(keys=keys_, args=args))

    async def requeue(self, job: wire.Job) -> str:
        """Back to `queued` as the next attempt; refused once output has reached a watcher."""
        eid = job.execution_id
        keys_ = [keys.execution(eid), keys.output_log(eid), keys.events(eid)]
        event = wire.encode(wire.StatusEvent(Status.QUEUED))
        return _text(await self._requeue(keys=keys_, args=[job.attempt, event]))

    async def abort(self, execution_id: str, language: str, ttl_s: int) -> str:
        """ABORTED_NOW (it was queued), KILL_SENT (its worker kills it), or its end status.

        A token of this call lets a re-sent abort recognise that it was the one that ended it.
        """
        result = wire.Result(execution_id=execution_id, language=language, status=Status.ABORTED)
        keys_ = _ending_keys(execution_id, language)
        args: list[bytes | int | str] = [
            wire.encode(result),
            wire.encode(wire.ExitEvent.of(result)),
            KILL,
            ttl_s,
            execution_id,
            uuid.uuid4().hex,
        ]
        return _text(await self._abort(keys=keys_, args=args))

    async def end_queued(self, result: wire.Result, token: str, ttl_s: int) -> str:
        """End the execution with `result` if it is still queued, its stream entry removed;
        ENDED_NOW (also for a re-sent call with the same `token`), or its status now."""
        eid = result.execution_id
        keys_ = _ending_keys(eid, result.language)
        args: list[bytes | int | str] = [
            wire.encode(result),
            wire.encode(wire.ExitEvent.of(result)),
            ttl_s,
            eid,
            token,
            result.status.value,
        ]
        return _text(await self._end_queued(keys=keys_, args=args))

    async def sweep(self, execution_id: str, language: str) -> tuple[str, int]:
        """(ALIVE | ORPHAN | its end status | missing, attempt when ORPHAN)."""
        keys_ = [keys.execution(execution_id), keys.active(language), *_streams(language)]
        reply = _text(await self._sweep(keys=keys_, args=[execution_id]))
        verdict, _, attempt = reply.partition(":")
        return verdict, int(attempt or 0)


def _ending_keys(execution_id: str, language: str) -> list[str]:
    """The keys of a script that ends a queued execution: its record, channel, control list,
    the active set and every stream its job may be on."""
    return [
        keys.execution(execution_id),
        keys.events(execution_id),
        keys.control(execution_id),
        keys.active(language),
        *_streams(language),
    ]


def _streams(language: str) -> list[str]:
    """The language's job streams, the standard one (the only one before priorities) first."""
    standard = keys.job_stream(language)
    return [standard, *(s for s in keys.job_streams(language) if s != standard)]


def _text(reply: object) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)
