"""How many warm containers a language's pool should keep: demand-driven, bounded, with hysteresis.

Demand is counted in containers, not in claims per second. A claimed container is never reused,
and its replacement becomes warm only one *lead time* L (create-to-ready) later, so the number of
warm containers a burst uses up before any replacement can arrive is the number of claims that
fall within an interval of length L. `recent_demand` is the peak of that count over the demand
window: the most claims in any interval [t, t + L) whose claims all lie in the last `window_s`.
Every claim counts, warm or cold: a cold start is demand the pool failed to meet, and leaving it
out would make a starved pool look idle and keep it starved.

    wanted = clamp(ceil(demand_factor * recent_demand), min, max)
    target = the highest value wanted at any moment of the last hold_s

The factor covers what the peak misses: a next burst a little bigger than the last, and a burst
faster than the worker's create limiter can refill, which drains more than its peak in L. L is a
high percentile of recent create-to-ready measurements, because underestimating it costs cold
starts while overestimating it costs only an idle container or two.

Growing is immediate, since every container missing during a burst is a cold start. Shrinking
waits until the lower value has held for `hold_s`, so that a lull between bursts does not stop
the pool from replacing what the next burst needs. Being a maximum over claims and over time,
the target never gives fewer containers for more claims. A schedule raises the floor for hours
of the day when demand is known in advance (lab sessions), before the first claim shows it.

Time is always passed in (`now`, seconds on a monotonic clock), so the policy is deterministic
and the simulator (poolmgr/simulate.py) can replay traces through this very class.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from runtimes.settings import PolicyError, PoolPolicy

DEFAULT_LEAD_TIME_S = 0.35
LEAD_SAMPLES = 32
LEAD_QUANTILE = 0.9
# 1.1 * 10 is 11.000000000000002 in binary floating point; its ceiling must still be 11.
_CEIL_SLACK = 1e-9


def local_hour() -> int:
    """The hour on this machine's wall clock, the one people write schedules in."""
    return time.localtime().tm_hour


class DemandSizer:
    """The target size of one language's pool, fed with its claims and measured lead times.

    Memory is bounded by the claims in the window. Both maxima (over the window and over the
    hold) are kept as monotonic queues, so that `target` costs O(1) amortized rather than a
    rescan of the window: the simulator asks after every event.
    """

    def __init__(
        self,
        policy: PoolPolicy,
        default_lead_time_s: float = DEFAULT_LEAD_TIME_S,
        wall_hour: Callable[[], int] = local_hour,
    ) -> None:
        if not (math.isfinite(default_lead_time_s) and default_lead_time_s > 0):
            raise PolicyError(f"lead time {default_lead_time_s} s must be positive")
        self.policy = policy
        self._wall_hour = wall_hour
        self._lead_s = default_lead_time_s
        self._lead_samples: deque[float] = deque(maxlen=LEAD_SAMPLES)
        self._claims: deque[float] = deque()
        # Claims less than one lead time before the newest: the interval that ends at it.
        self._burst: deque[float] = deque()
        # (earliest claim counted, count) per interval end, counts strictly decreasing: the
        # front is the peak among intervals whose every claim is still in the window.
        self._peaks: deque[tuple[float, int]] = deque()
        # (value wanted, until when) over the hold, values strictly decreasing: the front is
        # the target, the highest value wanted at any time in the last `hold_s`.
        self._held: deque[tuple[int, float]] = deque()

    @property
    def lead_time_s(self) -> float:
        """The create-to-ready time demand is counted over."""
        return self._lead_s

    def record_claim(self, now: float) -> None:
        """Count a container handed to an execution, warm or cold.

        An out-of-order `now` counts as simultaneous with the latest claim: a monotonic clock
        never produces one, and the sweep needs claims in order.
        """
        if self._claims:
            now = max(now, self._claims[-1])
        self._claims.append(now)
        self._push(now)
        self._prune(now)

    def record_lead_time(self, seconds: float) -> None:
        """Learn from a measured create-to-ready time."""
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"lead time {seconds} s must be positive")
        self._lead_samples.append(seconds)
        ranked = sorted(self._lead_samples)
        lead = ranked[math.ceil(LEAD_QUANTILE * len(ranked)) - 1]
        if lead != self._lead_s:
            self._lead_s = lead
            self._recount()

    def recent_demand(self, now: float) -> int:
        """The most claims in any lead-time interval within the window (module docstring)."""
        self._prune(now)
        if not self._claims:
            return 0
        # Intervals reaching back past the window's start count only their claims inside it;
        # the largest of those is the one starting at the oldest claim still inside.
        oldest = self._claims[0]
        edge = 0
        for claimed in self._claims:
            if claimed - oldest >= self._lead_s:
                break
            edge += 1
        return max(edge, self._peaks[0][1] if self._peaks else 0)

    def target(self, now: float) -> int:
        """The most wanted over the last `hold_s`: up at once, down once a lower value held."""
        wanted = self._wanted(now)
        held = self._held
        if held:
            value, _ = held.pop()
            held.append((value, now))  # the previous value was wanted until now
        while held and held[-1][0] <= wanted:
            held.pop()
        held.append((wanted, math.inf))
        horizon = now - self.policy.hold_s
        while held[0][1] <= horizon:
            held.popleft()
        return held[0][0]

    def _wanted(self, now: float) -> int:
        policy = self.policy
        floor = policy.min_at(self._wall_hour()) if policy.schedule else policy.min
        demand = math.ceil(policy.demand_factor * self.recent_demand(now) - _CEIL_SLACK)
        return min(max(demand, floor), policy.max)

    def _push(self, claimed: float) -> None:
        """Advance the two-pointer sweep by one claim and keep its interval's count."""
        while self._burst and claimed - self._burst[0] >= self._lead_s:
            self._burst.popleft()
        self._burst.append(claimed)
        count = len(self._burst)
        while self._peaks and self._peaks[-1][1] <= count:
            self._peaks.pop()
        self._peaks.append((self._burst[0], count))

    def _prune(self, now: float) -> None:
        horizon = now - self.policy.window_s
        while self._claims and self._claims[0] < horizon:
            self._claims.popleft()
        while self._peaks and self._peaks[0][0] < horizon:
            self._peaks.popleft()

    def _recount(self) -> None:
        """A new lead time changes every interval: sweep the window's claims again."""
        self._burst.clear()
        self._peaks.clear()
        for claimed in self._claims:
            self._push(claimed)
