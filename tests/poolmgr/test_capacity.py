"""Weighted slots: heavy runs cannot overcommit a worker, light ones fill the gaps."""

from __future__ import annotations

import pytest

from poolmgr.capacity import Capacity


def test_weights_add_up_to_the_total() -> None:
    cap = Capacity(8)
    cap.take(3)
    cap.take(3)
    assert cap.fits(1) and cap.fits(2) and not cap.fits(3)
    cap.take(2)
    assert not cap.fits(1)
    with pytest.raises(RuntimeError):
        cap.take(1)
    cap.give(3)
    assert cap.fits(3)


def test_a_weight_above_the_total_runs_alone() -> None:
    cap = Capacity(2)
    assert cap.fits(5)
    cap.take(5)
    assert cap.used == 2 and not cap.fits(1)
    cap.give(5)
    assert cap.used == 0


def test_weights_fit_together_by_their_clamped_costs() -> None:
    capacity = Capacity(3)
    assert capacity.fits_together([1, 2])
    assert not capacity.fits_together([2, 2])  # each fits alone, not both
    assert capacity.fits_together([5])  # clamped: a heavy run still runs alone
    capacity.take(1)
    assert not capacity.fits_together([1, 2]) and capacity.fits_together([2])
