"""Every Redis key, stream, group and channel name, built here and nowhere else."""

PREFIX = "cr:"
WORKER_GROUP = "workers"


PRIORITIES = ("premium", "standard")
"""Job priorities, in the order workers prefer them."""


def job_stream(language: str, priority: str = "standard") -> str:
    """The stream of accepted, not yet finished jobs of one language and priority."""
    return f"{PREFIX}jobs:{language}" + ("" if priority == "standard" else f":{priority}")


def job_streams(language: str) -> list[str]:
    """Every stream of one language, the preferred priority first."""
    return [job_stream(language, p) for p in PRIORITIES]


def user_active(user: str) -> str:
    """The set of a user's executions not yet known to have ended (the concurrency cap)."""
    return f"{PREFIX}user:{user}:active"


def rate_bucket(user: str) -> str:
    """A user's token bucket (the rate limit)."""
    return f"{PREFIX}rate:{user}"


def execution(execution_id: str) -> str:
    """The hash holding an execution's status, language and final result."""
    return f"{PREFIX}exec:{execution_id}"


def output_log(execution_id: str) -> str:
    """The list of output frames that a late WebSocket replays first."""
    return f"{PREFIX}out:{execution_id}"


def events(execution_id: str) -> str:
    """The pub/sub channel carrying an execution's live frames."""
    return f"{PREFIX}ev:{execution_id}"


def worker_heartbeat(worker_id: str) -> str:
    """A key with a TTL that exists while the worker lives."""
    return f"{PREFIX}worker:{worker_id}"


def control(execution_id: str) -> str:
    """The list of stdin and kill messages for a running execution, read by its worker."""
    return f"{PREFIX}ctl:{execution_id}"


DEAD_LETTERS = f"{PREFIX}dead"
"""The stream of jobs that kept failing for infrastructure reasons, kept for inspection."""

ACTIVE = f"{PREFIX}active"
"""Sorted set of executions not yet terminal, scored by acceptance time, for the sweeper."""

RUNTIME_VERSIONS = f"{PREFIX}runtimes"
"""Hash of language -> version, as the workers read it from their runtime images."""


def worker_load(worker_id: str) -> str:
    """A worker's recent load (warm containers, free slots, service times), for the app's
    `estimated_wait_ms`; it expires unless renewed, so a crashed worker's goes away."""
    return f"{PREFIX}load:{worker_id}"


WORKER_LOADS = f"{PREFIX}loads"
"""Set of the worker ids that have written a load report (pruned as reports expire)."""
