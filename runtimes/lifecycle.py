"""The execution state machine: the statuses and the transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"
    PREPARING = "preparing"
    RUNNING = "running"
    COMPLETED = "completed"
    COMPILE_ERROR = "compile_error"
    TIMED_OUT = "timed_out"
    MEMORY_EXCEEDED = "memory_exceeded"
    OUTPUT_EXCEEDED = "output_exceeded"
    ABORTED = "aborted"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def rank(self) -> int:
        """Position in the lifecycle; a watcher never shows a status of lower rank after it."""
        return _RANK.get(self, len(_RANK))


TERMINAL = frozenset(
    {
        Status.COMPLETED,
        Status.COMPILE_ERROR,
        Status.TIMED_OUT,
        Status.MEMORY_EXCEEDED,
        Status.OUTPUT_EXCEEDED,
        Status.ABORTED,
        Status.FAILED,
    }
)
_RANK = {Status.QUEUED: 0, Status.PREPARING: 1, Status.RUNNING: 2}

_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset({Status.PREPARING, Status.ABORTED, Status.FAILED}),
    # A transient infrastructure failure while preparing sends the job back to the queue.
    Status.PREPARING: frozenset({Status.RUNNING, Status.QUEUED, Status.ABORTED, Status.FAILED}),
    # A run whose worker died before any output reached a watcher is re-run from the queue.
    Status.RUNNING: TERMINAL | {Status.QUEUED},
}


class IllegalTransition(RuntimeError):
    """A component tried to move an execution along an edge the lifecycle does not have."""

    def __init__(self, old: Status, new: Status) -> None:
        super().__init__(f"illegal status transition {old} -> {new}")
        self.old, self.new = old, new


def check_transition(old: Status, new: Status) -> None:
    """Raise `IllegalTransition` unless `old -> new` is an edge of the lifecycle."""
    if new not in _ALLOWED.get(old, frozenset()):
        raise IllegalTransition(old, new)
