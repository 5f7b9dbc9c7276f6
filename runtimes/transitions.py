"""Atomic status writes in Redis, shared by the app (abort) and the workers (progress, end).

Every status write is a script that first checks the execution is not terminal yet, so an
execution reaches exactly one terminal status however the app, its worker and a recovering
worker race to end it. The caller learns whether its write won.
"""

from __future__ import annotations

from redis.asyncio import Redis

from runtimes import keys, wire
from runtimes.lifecycle import TERMINAL, Status

OK = "ok"
ABORTED_NOW, KILL_SENT = "aborted-now", "kill-sent"
_TERMINAL = "{" + ", ".join(f'["{s.value}"] = true' for s in sorted(TERMINAL)) + "}"
# Every script starts here: a missing or already terminal execution is left alone.
_GUARD = f"""
local terminal = {_TERMINAL}
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return 'missing' end
if terminal[current] then return current end
"""
# Worker writes also carry the job's attempt (ARGV[1]): a write from a superseded attempt
# (its worker was presumed dead and the job re-queued) is refused, and so is a second start
# of the same attempt (a duplicated stream entry).
_FENCE = """
local attempt = tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0')
if attempt ~= tonumber(ARGV[1]) then return 'stale' end
"""

# KEYS: execution, channel. ARGV: attempt, then (status, event) pairs, applied in order.
_ADVANCE = (
    _GUARD
    + _FENCE
    + """
if ARGV[2] == 'preparing' and current ~= 'queued' then return 'taken' end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], 'status', ARGV[i])
  redis.call('PUBLISH', KEYS[2], ARGV[i + 1])
end
return 'ok'
"""
)

# KEYS: execution, output log, channel. ARGV: attempt, status, result, exit event, ttl.
_FINISH = (
    _GUARD
    + _FENCE
    + """
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'result', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('PUBLISH', KEYS[3], ARGV[4])
return 'ok'
"""
)

# KEYS: execution, output log, channel. ARGV: attempt, queued status event.
# Back to the queue, as the next attempt, only while no output has reached the user.
_REQUEUE = (
    _GUARD
    + _FENCE
    + """
if redis.call('LLEN', KEYS[2]) > 0 then return 'has_output' end
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempt', attempt + 1)
redis.call('PUBLISH', KEYS[3], ARGV[2])
return 'ok'
"""
)

# KEYS: execution, channel, control. ARGV: aborted result, exit event, kill message, ttl.
# A queued execution ends here and now; a started one is killed by its worker.
_ABORT = (
    _GUARD
    + """
if current == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'aborted', 'result', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('PUBLISH', KEYS[2], ARGV[2])
  return 'aborted-now'
end
redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[4])
return 'kill-sent'
"""
)

KILL = b'{"type":"kill"}'


class Transitions:
    """The scripts, registered once per client."""

    def __init__(self, redis: Redis) -> None:
        self._advance = redis.register_script(_ADVANCE)
        self._finish = redis.register_script(_FINISH)
        self._requeue = redis.register_script(_REQUEUE)
        self._abort = redis.register_script(_ABORT)

    async def advance(self, job: wire.Job, statuses: list[Status]) -> str:
        """Move through `statuses`; `"ok"`, or why not (its end status, stale, taken)."""
        args: list[bytes | str | int] = [job.attempt]
        for status in statuses:
            args += [status.value, wire.encode(wire.StatusEvent(status))]
        keys_ = [keys.execution(job.execution_id), keys.events(job.execution_id)]
        return _text(await self._advance(keys=keys_, args=args))

    async def finish(self, attempt: int, result: wire.Result, ttl_s: int) -> str:
        """Record the result and publish `exit`; `"ok"`, or why not (end status, stale)."""
        eid = result.execution_id
        keys_ = [keys.execution(eid), keys.output_log(eid), keys.events(eid)]
        exit_event = wire.encode(wire.ExitEvent.of(result))
        args = [attempt, result.status.value, wire.encode(result), exit_event, ttl_s]
        return _text(await self._finish(keys=keys_, args=args))

    async def requeue(self, job: wire.Job) -> str:
        """Back to `queued` as the next attempt; refused once output has reached a watcher."""
        eid = job.execution_id
        keys_ = [keys.execution(eid), keys.output_log(eid), keys.events(eid)]
        event = wire.encode(wire.StatusEvent(Status.QUEUED))
        return _text(await self._requeue(keys=keys_, args=[job.attempt, event]))

    async def abort(self, execution_id: str, language: str, ttl_s: int) -> str:
        """ABORTED_NOW (it was queued), KILL_SENT (its worker kills it), or its end status."""
        result = wire.Result(execution_id=execution_id, language=language, status=Status.ABORTED)
        keys_ = [
            keys.execution(execution_id),
            keys.events(execution_id),
            keys.control(execution_id),
        ]
        args: list[bytes | int] = [
            wire.encode(result),
            wire.encode(wire.ExitEvent.of(result)),
            KILL,
            ttl_s,
        ]
        return _text(await self._abort(keys=keys_, args=args))


def _text(reply: object) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)
