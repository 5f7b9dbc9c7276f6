"""The pool sizing policy: demand in containers, bounds, hysteresis, schedules; properties checked
against a brute-force count."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from poolmgr.sizing import DemandSizer
from runtimes.settings import MinSchedule, PolicyError, PoolPolicy

LEAD = 0.35
# No example database in the tree, no deadline to flake on a busy machine; 60 examples keep the
# whole file well under a second.
property_settings = settings(database=None, deadline=None, max_examples=60)


def _brute_demand(claims: list[float], now: float, lead: float, window: float) -> int:
    inside = [t for t in claims if t >= now - window]
    return max((sum(1 for u in inside if 0 <= u - t < lead) for t in inside), default=0)


def _brute_wanted(policy: PoolPolicy, claims: list[float], now: float, lead: float) -> int:
    demand = _brute_demand(claims, now, lead, policy.window_s)
    return min(max(math.ceil(policy.demand_factor * demand - 1e-9), policy.min), policy.max)


def test_an_idle_pool_sits_at_min() -> None:
    assert DemandSizer(PoolPolicy(min=2)).target(0.0) == 2


def test_demand_counts_the_claims_within_one_lead_time() -> None:
    close, spread = DemandSizer(PoolPolicy()), DemandSizer(PoolPolicy())
    for t in (0.0, 0.1, 0.2):
        close.record_claim(t)
    for t in (0.0, 0.4, 0.8):
        spread.record_claim(t)
    assert close.recent_demand(1.0) == 3
    assert spread.recent_demand(1.0) == 1


def test_a_claim_one_lead_time_later_finds_the_replacement() -> None:
    sizer = DemandSizer(PoolPolicy(), default_lead_time_s=0.5)
    sizer.record_claim(1.0)
    sizer.record_claim(1.5)
    assert sizer.recent_demand(2.0) == 1


@pytest.mark.parametrize(
    ("policy", "claims", "target"),
    [
        (PoolPolicy(demand_factor=1.5), 3, 5),  # rounded up
        (PoolPolicy(max=20, demand_factor=1.1), 10, 11),  # a whole product is not rounded up
        (PoolPolicy(max=4), 10, 4),  # never above max
    ],
)
def test_target_is_the_factor_times_demand_within_max(
    policy: PoolPolicy, claims: int, target: int
) -> None:
    sizer = DemandSizer(policy)
    for _ in range(claims):
        sizer.record_claim(0.0)
    assert sizer.target(0.0) == target


def test_claims_older_than_the_window_stop_counting() -> None:
    sizer = DemandSizer(PoolPolicy(window_s=10))
    for t in (0.0, 0.2, 5.0):
        sizer.record_claim(t)
    assert sizer.recent_demand(10.0) == 2
    assert sizer.recent_demand(10.1) == 1
    assert sizer.recent_demand(15.1) == 0


def test_an_out_of_order_claim_counts_as_simultaneous() -> None:
    sizer = DemandSizer(PoolPolicy())
    sizer.record_claim(5.0)
    sizer.record_claim(1.0)
    assert sizer.recent_demand(5.0) == 2


def test_lead_time_is_a_high_percentile_of_recent_creates() -> None:
    sizer = DemandSizer(PoolPolicy())
    assert sizer.lead_time_s == LEAD
    for _ in range(31):
        sizer.record_lead_time(0.2)
    sizer.record_lead_time(3.0)
    assert sizer.lead_time_s == 0.2  # one slow create among 32 is an outlier
    for _ in range(3):
        sizer.record_lead_time(0.9)
    assert sizer.lead_time_s == 0.9  # an eighth of them is the tail to plan for


def test_a_new_lead_time_recounts_the_window() -> None:
    sizer = DemandSizer(PoolPolicy())
    sizer.record_claim(0.0)
    sizer.record_claim(0.3)
    assert sizer.recent_demand(0.3) == 2
    sizer.record_lead_time(0.25)
    assert sizer.recent_demand(0.3) == 1


@pytest.mark.parametrize("seconds", [0.0, -1.0, math.inf, math.nan])
def test_an_impossible_lead_time_is_refused(seconds: float) -> None:
    with pytest.raises(ValueError, match="lead time"):
        DemandSizer(PoolPolicy()).record_lead_time(seconds)


def test_scale_up_is_immediate_and_scale_down_waits_for_the_hold() -> None:
    sizer = DemandSizer(PoolPolicy(min=1, demand_factor=1, window_s=10, hold_s=5))
    assert sizer.target(0.0) == 1
    for _ in range(4):
        sizer.record_claim(1.0)
    assert sizer.target(1.0) == 4
    assert sizer.target(11.5) == 4  # the burst left the window: the hold starts
    assert sizer.target(16.4) == 4
    assert sizer.target(16.5) == 1


def test_scale_down_goes_to_the_highest_value_wanted_during_the_hold() -> None:
    sizer = DemandSizer(PoolPolicy(min=0, demand_factor=1, window_s=10, hold_s=5))
    for _ in range(4):
        sizer.record_claim(0.0)
    assert sizer.target(0.0) == 4
    sizer.record_claim(2.0)
    sizer.record_claim(2.0)
    assert sizer.target(10.5) == 4  # only the pair at 2.0 is left: 2 wanted, hold starts
    assert sizer.target(12.5) == 4  # the pair aged out too: 0 wanted
    assert sizer.target(15.5) == 2
    assert sizer.target(17.5) == 0


def test_a_new_burst_during_the_hold_cancels_it() -> None:
    sizer = DemandSizer(PoolPolicy(min=0, demand_factor=1, window_s=10, hold_s=5))
    for _ in range(3):
        sizer.record_claim(0.0)
    sizer.target(0.0)
    assert sizer.target(11.0) == 3
    for _ in range(3):
        sizer.record_claim(13.0)
    assert sizer.target(13.0) == 3
    assert sizer.target(16.0) == 3


@pytest.mark.parametrize(
    ("rule", "inside", "outside"),
    [
        (MinSchedule(9, 17, 4), [9, 12, 16], [8, 17, 23]),
        (MinSchedule(22, 6, 2), [22, 0, 5], [6, 21]),
    ],
)
def test_a_schedule_covers_its_hours_end_exclusive(
    rule: MinSchedule, inside: list[int], outside: list[int]
) -> None:
    assert all(rule.covers(hour) for hour in inside)
    assert not any(rule.covers(hour) for hour in outside)


def test_a_schedule_raises_min_during_its_hours_only() -> None:
    hour = 8
    policy = PoolPolicy(min=1, hold_s=0, schedule=(MinSchedule(9, 17, 4),))
    sizer = DemandSizer(policy, wall_hour=lambda: hour)
    assert sizer.target(0.0) == 1
    hour = 9
    assert sizer.target(1.0) == 4
    hour = 17
    assert sizer.target(2.0) == 1


@property_settings
@given(st.integers(0, 23), st.integers(0, 23), st.integers(0, 24), st.integers(0, 8))
def test_a_schedule_sets_the_floor_in_its_hours_only(
    hour: int, start: int, end: int, floor: int
) -> None:
    assume(start != end)
    rule = MinSchedule(start, end, floor)
    sizer = DemandSizer(PoolPolicy(min=1, schedule=(rule,)), wall_hour=lambda: hour)
    in_hours = start <= hour < end if start < end else not end <= hour < start
    assert sizer.target(0.0) == (max(1, floor) if in_hours else 1)


@pytest.mark.parametrize(
    "make",
    [
        lambda: PoolPolicy(min=3, max=2),
        lambda: PoolPolicy(min=-1),
        lambda: PoolPolicy(demand_factor=0),
        lambda: PoolPolicy(window_s=0),
        lambda: PoolPolicy(hold_s=-1),
        lambda: PoolPolicy(max=4, schedule=(MinSchedule(9, 17, 5),)),
        lambda: MinSchedule(9, 9, 1),
        lambda: MinSchedule(24, 3, 1),
        lambda: MinSchedule(9, 17, -1),
    ],
)
def test_an_unworkable_policy_is_refused(make: Callable[[], object]) -> None:
    with pytest.raises(PolicyError):
        make()


policies = st.builds(
    PoolPolicy,
    min=st.integers(0, 3),
    max=st.integers(3, 12),
    demand_factor=st.sampled_from([1.0, 1.1, 1.5, 2.0, 3.0]),
    window_s=st.sampled_from([0.5, 1.0, 3.0, 10.0]),
    hold_s=st.sampled_from([0.0, 0.5, 2.0]),
)
# (advance in twentieths of a second, claims at that instant); ties and exact lead-time gaps
# are common on this grid, which is where off-by-one mistakes live.
steps = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 4)), max_size=40)
leads = st.sampled_from([0.1, 0.25, LEAD, 0.5, 1.0])


def _replay(
    policy: PoolPolicy, lead: float, plan: list[tuple[int, int]]
) -> list[tuple[float, int, int]]:
    """(time, wanted by brute force, target) after each step."""
    sizer = DemandSizer(policy, default_lead_time_s=lead)
    claims: list[float] = []
    out = []
    now = 0.0
    for advance, count in plan:
        now += advance / 20
        for _ in range(count):
            sizer.record_claim(now)
            claims.append(now)
        out.append((now, _brute_wanted(policy, claims, now, lead), sizer.target(now)))
    return out


@property_settings
@given(policies, leads, steps)
def test_recent_demand_is_the_peak_over_lead_time_intervals(
    policy: PoolPolicy, lead: float, plan: list[tuple[int, int]]
) -> None:
    sizer = DemandSizer(policy, default_lead_time_s=lead)
    claims: list[float] = []
    now = 0.0
    for advance, count in plan:
        now += advance / 20
        for _ in range(count):
            sizer.record_claim(now)
            claims.append(now)
        assert sizer.recent_demand(now) == _brute_demand(claims, now, lead, policy.window_s)


@property_settings
@given(policies, leads, steps)
def test_target_stays_within_bounds_and_never_lags_demand(
    policy: PoolPolicy, lead: float, plan: list[tuple[int, int]]
) -> None:
    for _, wanted, target in _replay(policy, lead, plan):
        assert policy.min <= target <= policy.max
        assert target >= wanted


@property_settings
@given(policies, leads, steps)
def test_target_is_the_most_wanted_during_the_hold(
    policy: PoolPolicy, lead: float, plan: list[tuple[int, int]]
) -> None:
    """Up at once, and down only once every value wanted in the last hold_s was lower."""
    history = _replay(policy, lead, plan)
    for i, (now, _, target) in enumerate(history):
        # A value stays wanted until the next evaluation replaces it.
        held = [history[j][1] for j in range(i) if history[j + 1][0] > now - policy.hold_s]
        assert target == max([history[i][1], *held])


@property_settings
@given(policies, leads, steps, st.data())
def test_more_claims_never_lower_the_target(
    policy: PoolPolicy, lead: float, plan: list[tuple[int, int]], data: st.DataObject
) -> None:
    extra = [data.draw(st.integers(0, 2)) for _ in plan]
    more = [(advance, count + add) for (advance, count), add in zip(plan, extra, strict=True)]
    fewer_targets = [target for _, _, target in _replay(policy, lead, plan)]
    more_targets = [target for _, _, target in _replay(policy, lead, more)]
    assert all(m >= f for m, f in zip(more_targets, fewer_targets, strict=True))
