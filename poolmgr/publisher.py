"""The worker's side of one execution in Redis: status, output frames, final result."""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from runtimes import keys, wire
from runtimes.lifecycle import Status, check_transition

log = logging.getLogger(__name__)


class ExecutionPublisher:
    """Writes an execution's state and frames: hash + replay log + pub/sub, in that order.

    Each frame is appended to the replay log before it is published, in one round
    trip, so a watcher that subscribes and then reads the log misses nothing.
    """

    def __init__(self, redis: Redis, job: wire.Job, ttl_s: int) -> None:
        self._redis = redis
        self._job = job
        self._ttl = ttl_s
        self._key = keys.execution(job.execution_id)
        self._log = keys.output_log(job.execution_id)
        self._channel = keys.events(job.execution_id)
        self.status = Status.QUEUED
        self.seq = 0
        self._since = time.monotonic()

    def _transition(self, new: Status, failure_code: str | None = None) -> None:
        check_transition(self.status, new)
        now = time.monotonic()
        log.info(
            "execution=%s language=%s status=%s previous=%s duration_ms=%.1f failure_code=%s",
            self._job.execution_id,
            self._job.language,
            new,
            self.status,
            (now - self._since) * 1e3,
            failure_code,
        )
        self.status, self._since = new, now

    async def set_status(self, *statuses: Status) -> None:
        """Move through `statuses` in order (skipping the current one), in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for status in statuses:
                if status is self.status:
                    continue
                self._transition(status)
                pipe.hset(self._key, "status", status.value)
                pipe.publish(self._channel, wire.encode(wire.StatusEvent(status)))
            await pipe.execute()

    async def output(self, stream: str, data: str) -> None:
        event = wire.OutputEvent(
            type="stdout" if stream == "stdout" else "stderr", data=data, seq=self.seq
        )
        raw = wire.encode(event)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(self._log, raw)
            if self.seq == 0:
                pipe.expire(self._log, self._ttl)
            pipe.publish(self._channel, raw)
            await pipe.execute()
        self.seq += 1

    async def finish(self, result: wire.Result) -> None:
        self._transition(result.status, result.failure_code)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._key, mapping={"status": result.status.value, "result": wire.encode(result)}
            )
            pipe.expire(self._key, self._ttl)
            pipe.expire(self._log, self._ttl)
            pipe.publish(self._channel, wire.encode(wire.ExitEvent.of(result)))
            await pipe.execute()
