"""From a caller's request to a queued job: the rate limit, validation, the caller's
concurrency cap and the language's queue depth, in that order, for HTTP and `/ws/run` alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.auth import Caller
from app.errors import ApiError, headed
from app.estimate import WaitEstimator
from app.executions import BUSY, ExecutionStore, Refused
from app.ratelimit import RateLimiter
from app.validation import build_job, check_version, requested_version
from runtimes import wire
from runtimes.settings import Settings

BUSY_RETRY_S = 1
SHED_RETRY_S = 5


@dataclass
class Ticket:
    """A validated job and the rate-limit headers every answer to its request carries."""

    job: wire.Job
    headers: dict[str, str] = field(default_factory=dict)


class Admission:
    def __init__(
        self,
        settings: Settings,
        store: ExecutionStore,
        limiter: RateLimiter,
        estimator: WaitEstimator,
    ) -> None:
        self._settings = settings
        self._store = store
        self._limiter = limiter
        self._estimator = estimator

    async def draw(self, caller: Caller) -> dict[str, str]:
        """Take one of the caller's tokens: the rate-limit headers for every answer to this
        request, or a 429. It comes before validation, so floods of bad requests count too."""
        verdict = await self._limiter.take(caller.user)
        if verdict is None:
            return {}
        if not verdict.allowed:
            raise ApiError(
                429,
                "rate_limited",
                f"rate limit: a burst of {verdict.limit} runs, then {verdict.rate_per_s:g}"
                f" per second; retry in {verdict.retry_after_s} s",
                headers={**verdict.headers, "Retry-After": str(verdict.retry_after_s)},
            )
        return verdict.headers

    async def validate(self, caller: Caller, body: Any, headers: dict[str, str]) -> Ticket:
        """The caller's job for an execute body, or a 4xx carrying `headers`."""
        with headed(headers):
            if not isinstance(body, dict):
                raise ApiError(400, "invalid_json", "the body must be a JSON object")
            job = build_job(body, self._settings, caller.user, caller.tier)
            requested = requested_version(body)
            if requested is not None:
                versions = await self._store.runtime_versions()
                check_version(job.language, requested, versions.get(job.language))
        return Ticket(job, headers)

    async def submit(self, ticket: Ticket) -> int | None:
        """Queue the job, unless the caller is at their concurrency cap (429) or the
        language's queue is past its depth limit (503): then nothing is queued. Returns
        its estimated wait (see app/estimate.py)."""
        job = ticket.job
        try:
            ahead = await self._submit(job)
        except Refused as refused:
            if refused.reason == BUSY:
                raise ApiError(
                    429,
                    "too_many_running",
                    f"at most {self._settings.max_concurrent_per_user} executions of one user"
                    " may be queued or running at once; retry when one has ended",
                    headers={**ticket.headers, "Retry-After": str(BUSY_RETRY_S)},
                ) from None
            raise ApiError(
                503,
                "queue_full",
                f"the {job.language} queue is full ({self._settings.max_queue_depth(job.language)}"
                " executions waiting); retry shortly",
                headers={**ticket.headers, "Retry-After": str(SHED_RETRY_S)},
            ) from None
        return self._estimator.wait_ms(job.language, ahead) if ahead is not None else None

    async def _submit(self, job: wire.Job) -> int | None:
        """`store.submit`; when its reply is lost (a timeout, a dropped connection), whether
        the job was queued is read back by its id before the caller is told 503: a run that
        was queued must not be reported as refused (the client would never learn its id).
        None (jobs ahead unknown) when it was queued after all."""
        try:
            return await self._store.submit(
                job,
                self._settings.max_concurrent_per_user,
                self._settings.max_queue_depth(job.language),
            )
        except (RedisConnectionError, RedisTimeoutError):
            try:
                if await self._store.get(job.execution_id) is not None:
                    return None
            except RedisError:
                pass  # still unreachable: the 503 below says so
            raise
