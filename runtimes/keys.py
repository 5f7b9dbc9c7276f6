"""Every Redis key, stream, group and channel name, built here and nowhere else.

Laid out for Redis Cluster: every script and transaction touches keys of one hash slot.
An execution's keys carry its language's hash tag (`{python}`), as do that language's job
streams (both priorities), its set of unended executions and its dead letters; so whatever
ends, re-queues or sweeps an execution touches one slot, and the languages spread over the
cluster. An execution id starts with its language (`python-3f2a...`), so the app finds the
slot from the id alone. Keys of one user, and the workers' load reports, have tags of their
own.
"""

import re
import uuid

PREFIX = "cr:"
WORKER_GROUP = "workers"


PRIORITIES = ("premium", "standard")
"""Job priorities, in the order workers prefer them."""


def new_execution_id(language: str) -> str:
    """A fresh execution id, whose prefix names the slot of all its keys."""
    return f"{language}-{uuid.uuid4().hex}"


_EXECUTION_ID = re.compile(r"[a-z][a-z0-9_]*-[0-9a-f]{32}")


def is_execution_id(text: str) -> bool:
    """Whether `text` is shaped like an id `new_execution_id` makes: any other (one from a
    URL) names no execution, and must not reach Redis, where it could name keys of slots
    that no script may mix."""
    return _EXECUTION_ID.fullmatch(text) is not None


def _slot_of(execution_id: str) -> str:
    """The hash tag of an execution's keys: its language."""
    return "{" + execution_id.partition("-")[0] + "}"


def job_stream(language: str, priority: str = "standard") -> str:
    """The stream of accepted, not yet finished jobs of one language and priority."""
    return f"{PREFIX}{{{language}}}:jobs" + ("" if priority == "standard" else f":{priority}")


def job_streams(language: str) -> list[str]:
    """Every stream of one language, the preferred priority first."""
    return [job_stream(language, p) for p in PRIORITIES]


def stream_language(stream: str) -> str:
    """The language of one of the job streams."""
    return stream.partition("{")[2].partition("}")[0]


def active(language: str) -> str:
    """Sorted set of the language's executions not yet terminal, scored by acceptance time,
    for the sweeper."""
    return f"{PREFIX}{{{language}}}:active"


def dead_letters(language: str) -> str:
    """The stream of the language's jobs that kept failing for infrastructure reasons, kept
    for inspection."""
    return f"{PREFIX}{{{language}}}:dead"


def user_active(user: str) -> str:
    """A user's executions not yet known to have ended, scored by when their slot was taken
    (the concurrency cap)."""
    return f"{PREFIX}{{user:{user}}}:active"


def rate_bucket(user: str) -> str:
    """A user's token bucket (the rate limit)."""
    return f"{PREFIX}rate:{user}"


def execution(execution_id: str) -> str:
    """The hash holding an execution's status, language and final result."""
    return f"{PREFIX}{_slot_of(execution_id)}:exec:{execution_id}"


def output_log(execution_id: str) -> str:
    """The list of output frames that a late WebSocket replays first."""
    return f"{PREFIX}{_slot_of(execution_id)}:out:{execution_id}"


def events(execution_id: str) -> str:
    """The pub/sub channel carrying an execution's live frames."""
    return f"{PREFIX}{_slot_of(execution_id)}:ev:{execution_id}"


def control(execution_id: str) -> str:
    """The list of stdin and kill messages for a running execution, read by its worker."""
    return f"{PREFIX}{_slot_of(execution_id)}:ctl:{execution_id}"


def worker_heartbeat(worker_id: str) -> str:
    """A key with a TTL that exists while the worker lives."""
    return f"{PREFIX}worker:{worker_id}"


RUNTIME_VERSIONS = f"{PREFIX}runtimes"
"""Hash of language -> version, as the workers read it from their runtime images."""


def worker_load(worker_id: str) -> str:
    """A worker's recent load (warm containers, free slots, service times), for the app's
    `estimated_wait_ms`; it expires unless renewed, so a crashed worker's goes away."""
    return f"{PREFIX}{{loads}}:{worker_id}"


WORKER_LOADS = f"{PREFIX}{{loads}}"
"""Set of the worker ids that have written a load report (pruned as reports expire); in
the reports' slot, so the app reads them all in one MGET."""
