"""The execution state machine allows exactly the contract's transitions."""

from __future__ import annotations

import pytest

from runtimes.lifecycle import TERMINAL, IllegalTransition, Status, check_transition


def test_happy_path_is_allowed() -> None:
    check_transition(Status.QUEUED, Status.PREPARING)
    check_transition(Status.PREPARING, Status.RUNNING)
    for end in TERMINAL:
        check_transition(Status.RUNNING, end)


@pytest.mark.parametrize("end", sorted(TERMINAL))
def test_terminal_statuses_are_final(end: Status) -> None:
    for new in Status:
        with pytest.raises(IllegalTransition):
            check_transition(end, new)


def test_no_skipping_or_going_back() -> None:
    for old, new in [
        (Status.QUEUED, Status.RUNNING),
        (Status.QUEUED, Status.COMPLETED),
        (Status.RUNNING, Status.PREPARING),
        (Status.PREPARING, Status.COMPLETED),
    ]:
        with pytest.raises(IllegalTransition):
            check_transition(old, new)


def test_rank_orders_the_lifecycle() -> None:
    assert Status.QUEUED.rank < Status.PREPARING.rank < Status.RUNNING.rank < Status.COMPLETED.rank
    assert all(s.terminal for s in TERMINAL) and not Status.RUNNING.terminal
