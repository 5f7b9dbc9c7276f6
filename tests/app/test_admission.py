"""Admission's answer when Redis loses the reply to a submit."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.admission import Admission, Ticket
from app.estimate import WaitEstimator
from app.executions import ExecutionStore
from app.ratelimit import RateLimiter
from runtimes import keys, wire
from runtimes.settings import Settings

pytestmark = pytest.mark.anyio


class LostReply(ExecutionStore):
    """Runs the submit (or not), then loses the reply as a timed-out connection does."""

    queue_it = True

    async def submit(self, job: wire.Job, max_concurrent: int, max_depth: int) -> int:
        if self.queue_it:
            await super().submit(job, max_concurrent, max_depth)
        raise RedisTimeoutError("Timeout reading from socket")


def _admission(redis: Redis, store: ExecutionStore) -> Admission:
    return Admission(Settings(), store, RateLimiter(redis, 0, 0), WaitEstimator(redis))


def _ticket() -> Ticket:
    job = wire.Job(keys.new_execution_id("python"), "python", (wire.SourceFile("main.py", "1"),))
    return Ticket(job)


async def test_a_queued_run_whose_reply_was_lost_is_accepted(redis: Redis) -> None:
    """It was reported as 503 'nothing was queued' while it ran (the client never learnt
    its id); now the record is read back and the run is accepted."""
    store = LostReply(redis, ttl_s=60, max_stdin_bytes=10)
    ticket = _ticket()
    assert await _admission(redis, store).submit(ticket) is None  # queued; wait unknown
    assert await store.get(ticket.job.execution_id) is not None


async def test_a_run_that_was_not_queued_is_still_refused(redis: Redis) -> None:
    store = LostReply(redis, ttl_s=60, max_stdin_bytes=10)
    store.queue_it = False
    with pytest.raises(RedisTimeoutError):
        await _admission(redis, store).submit(_ticket())
