"""Replay arrival traces through pool-sizing policies to weigh cold starts against idle containers.

The model is the worker's pool (poolmgr/pool.py) reduced to counts. A claim takes a warm
container if there is one, otherwise it is a cold start; either way the container is used once
and never comes back. After every event the pool asks its policy for a target and requests
creates until warm + creating reaches it. A create holds one of `max_creating` slots for
`create_latency_s`, in arrival order, cold starts included, as on the worker's shared limiter.
Every tick, the pool re-evaluates its target and recycles `recycle_per_tick` warm containers
above it, as the pool does.

Run `python -m poolmgr.simulate --help`; the README's pool sizing section has the figures.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from poolmgr.sizing import DemandSizer
from runtimes.settings import PoolPolicy

_READY, _CLAIM, _TICK = range(3)  # at equal times: a container that is ready can be claimed


@dataclass(frozen=True)
class Trace:
    """Arrival times in seconds from the start, sorted, over `duration_s`."""

    name: str
    arrivals: tuple[float, ...]
    duration_s: float


def poisson(rate: float, duration_s: float, seed: int) -> Trace:
    """Independent arrivals at a steady `rate` per second."""
    rng = random.Random(seed)
    arrivals: list[float] = []
    t = rng.expovariate(rate)
    while t < duration_s:
        arrivals.append(t)
        t += rng.expovariate(rate)
    return Trace(f"poisson {rate:g}/s seed {seed}", tuple(arrivals), duration_s)


def bursts(
    rate: float,
    duration_s: float,
    seed: int,
    size: int = 20,
    every_s: float = 120.0,
    spread_s: float = 2.0,
) -> Trace:
    """A Poisson baseline plus `size` arrivals within `spread_s` every `every_s`: a class's Run."""
    rng = random.Random(seed)
    baseline = poisson(rate, duration_s, seed).arrivals
    starts = [k * every_s for k in range(1, math.ceil(duration_s / every_s))]
    burst = [start + rng.uniform(0, spread_s) for start in starts for _ in range(size)]
    arrivals = sorted(t for t in (*baseline, *burst) if t < duration_s)
    name = f"bursts {rate:g}/s + {size} every {every_s:g}s seed {seed}"
    return Trace(name, tuple(arrivals), duration_s)


def diurnal(rate: float, duration_s: float, seed: int, period_s: float | None = None) -> Trace:
    """A rate rising from 0 to 2 * `rate` and back over `period_s` (default: the whole trace)."""
    period = duration_s if period_s is None else period_s
    peak = 2 * rate
    rng = random.Random(seed)
    arrivals: list[float] = []
    t = rng.expovariate(peak)
    while t < duration_s:  # thinning: keep a peak-rate arrival with probability rate(t) / peak
        if rng.random() < (1 - math.cos(2 * math.pi * t / period)) / 2:
            arrivals.append(t)
        t += rng.expovariate(peak)
    return Trace(f"diurnal {rate:g}/s mean seed {seed}", tuple(arrivals), duration_s)


def load_trace(path: Path) -> Trace:
    """One arrival per line, in seconds; blank lines and `#` comments are skipped."""
    arrivals: list[float] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            arrivals.append(float(text))
        except ValueError:
            raise ValueError(f"{path}:{number}: {text!r} is not a time in seconds") from None
    arrivals.sort()
    return Trace(path.name, tuple(arrivals), arrivals[-1] if arrivals else 0.0)


class Policy(Protocol):
    """What the simulated pool asks and tells a sizing policy."""

    name: str

    def record_claim(self, now: float, cold: bool) -> None: ...

    def record_lead_time(self, seconds: float) -> None: ...

    def target(self, now: float) -> int: ...


class Demand:
    """The worker's policy: poolmgr.sizing.DemandSizer, which counts warm and cold alike.

    Its wall clock is the trace's: the trace starts at midnight, so that schedules replay the
    same way on every run.
    """

    def __init__(self, policy: PoolPolicy) -> None:
        self.name = (
            f"demand {policy.min}..{policy.max} x{policy.demand_factor:g}"
            f" w{policy.window_s:g} h{policy.hold_s:g}"
        )
        self._now = 0.0
        self._sizer = DemandSizer(policy, wall_hour=lambda: int(self._now // 3600) % 24)

    def record_claim(self, now: float, cold: bool) -> None:
        self._sizer.record_claim(now)

    def record_lead_time(self, seconds: float) -> None:
        self._sizer.record_lead_time(seconds)

    def target(self, now: float) -> int:
        self._now = now
        return self._sizer.target(now)


class Fixed:
    """A constant pool size, what the worker had before demand sizing."""

    def __init__(self, size: int) -> None:
        self.name = f"fixed {size}"
        self._size = size

    def record_claim(self, now: float, cold: bool) -> None:
        pass

    def record_lead_time(self, seconds: float) -> None:
        pass

    def target(self, now: float) -> int:
        return self._size


class MissesOnly:
    """OpenWhisk's reactive prewarming (threshold 1, increment 1): each period, the pool is
    resized to the cold starts seen in the last one, within [min, max]."""

    def __init__(self, low: int, high: int, period_s: float = 600.0) -> None:
        if period_s <= 0:
            raise ValueError(f"misses-only period {period_s} s must be positive")
        self.name = f"misses-only {low}..{high} p{period_s:g}"
        self._low, self._high, self._period_s = low, high, period_s
        self._size = low
        self._misses = 0
        self._period_end = period_s

    def record_claim(self, now: float, cold: bool) -> None:
        self._misses += cold

    def record_lead_time(self, seconds: float) -> None:
        pass

    def target(self, now: float) -> int:
        while now >= self._period_end:
            self._size = min(max(self._misses, self._low), self._high)
            self._misses = 0
            self._period_end += self._period_s
        return self._size


@dataclass(frozen=True)
class Model:
    """The worker as the simulator sees it: create latency, create limiter, the pool's tick."""

    create_latency_s: float = 0.35
    max_creating: int = 2  # the worker's MAX_CONCURRENT_CREATES
    tick_s: float = 1.0  # the pool's TICK_S
    recycle_per_tick: int = 1  # the pool's RECYCLE_PER_TICK

    def __post_init__(self) -> None:
        if not (self.create_latency_s > 0 and self.max_creating >= 1 and self.tick_s > 0):
            raise ValueError("create latency, create slots and tick must be positive")
        if self.recycle_per_tick < 0:
            raise ValueError("recycle per tick must not be negative")


@dataclass(frozen=True)
class Report:
    """One policy's outcome on one trace: the two costs being traded, and the footprint."""

    policy: str
    claims: int
    cold_starts: int
    idle_container_s: float  # warm containers waiting unclaimed, integrated over the trace
    peak_containers: int  # most warm + creating at once, the pool's own (not cold starts)

    @property
    def cold_rate(self) -> float:
        return self.cold_starts / self.claims if self.claims else 0.0


def simulate(trace: Trace, policy: Policy, model: Model) -> Report:
    """Run one trace through a fresh policy (policies keep state); event-driven, so the cost
    grows with the arrivals only."""
    events: list[tuple[float, int, bool]] = [(t, _CLAIM, False) for t in trace.arrivals]
    events.append((0.0, _TICK, False))
    heapq.heapify(events)
    queued: deque[bool] = deque()  # creates waiting for a slot: True refills the pool
    warm = creating = busy = cold = peak = 0
    idle = last = 0.0

    def create(now: float, refill: bool) -> None:
        nonlocal busy
        if busy < model.max_creating:
            busy += 1
            heapq.heappush(events, (now + model.create_latency_s, _READY, refill))
        else:
            queued.append(refill)

    while events and events[0][0] <= trace.duration_s:
        now, kind, refill = heapq.heappop(events)
        idle += warm * (now - last)
        last = now
        if kind == _READY:
            busy -= 1
            policy.record_lead_time(model.create_latency_s)
            if refill:
                creating -= 1
                warm += 1
            if queued:
                create(now, queued.popleft())
        elif kind == _CLAIM:
            policy.record_claim(now, cold=warm == 0)
            if warm:
                warm -= 1
            else:
                cold += 1
                create(now, refill=False)
        else:
            heapq.heappush(events, (now + model.tick_s, _TICK, False))
        target = policy.target(now)
        if kind == _TICK:
            warm -= min(max(warm + creating - target, 0), warm, model.recycle_per_tick)
        while warm + creating < target:
            creating += 1
            create(now, refill=True)
        peak = max(peak, warm + creating)
    idle += warm * (trace.duration_s - last)
    return Report(policy.name, len(trace.arrivals), cold, idle, peak)


def format_table(reports: Sequence[Report]) -> str:
    lines = [f"{'policy':<34}{'cold-start %':>13}{'idle container-s':>18}{'peak containers':>17}"]
    for r in reports:
        lines.append(
            f"{r.policy:<34}{100 * r.cold_rate:>13.2f}{r.idle_container_s:>18.0f}"
            f"{r.peak_containers:>17}"
        )
    return "\n".join(lines)


def _positive(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _parser() -> argparse.ArgumentParser:
    d, m = PoolPolicy(), Model()
    parser = argparse.ArgumentParser(
        prog="coderunner pool simulate",
        description="Compare pool-sizing policies on an arrival trace.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--trace", choices=("poisson", "bursts", "diurnal"), default="poisson")
    source.add_argument("--trace-file", type=Path, help="one arrival time in seconds per line")
    parser.add_argument("--rate", type=_positive, default=1.0, help="arrivals per second (mean)")
    parser.add_argument("--duration", type=_positive, default=3600.0, help="trace length, seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--burst-size", type=_count, default=20, help="arrivals per burst")
    parser.add_argument("--burst-every", type=_positive, default=120.0, help="seconds between")
    parser.add_argument("--create-latency", type=_positive, default=m.create_latency_s)
    parser.add_argument("--max-creating", type=_count, default=m.max_creating)
    parser.add_argument("--min", type=_count, default=d.min)
    parser.add_argument("--max", type=_count, default=d.max)
    parser.add_argument("--factor", type=_positive, default=d.demand_factor)
    parser.add_argument("--window", type=_positive, default=d.window_s)
    parser.add_argument("--hold", type=float, default=d.hold_s)
    parser.add_argument("--misses-period", type=_positive, default=600.0)
    parser.add_argument(
        "--fixed",
        type=_count,
        action="append",
        metavar="K",
        help="a fixed pool size to compare, repeatable (default: --min and --max)",
    )
    return parser


def _trace(args: argparse.Namespace) -> Trace:
    if args.trace_file is not None:
        return load_trace(args.trace_file)
    if args.trace == "bursts":
        return bursts(args.rate, args.duration, args.seed, args.burst_size, args.burst_every)
    if args.trace == "diurnal":
        return diurnal(args.rate, args.duration, args.seed)
    return poisson(args.rate, args.duration, args.seed)


def main(argv: list[str] | None = None) -> int:
    """Print one table row per policy: ours, fixed sizes, misses-only; 0 on success."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        trace = _trace(args)
        sizing = PoolPolicy(args.min, args.max, args.factor, args.window, args.hold)
        model = Model(args.create_latency, args.max_creating)
    except (OSError, ValueError) as exc:  # PolicyError is a ValueError
        parser.error(str(exc))
    fixed = args.fixed or [args.min, args.max]
    policies: list[Policy] = [
        Demand(sizing),
        *(Fixed(size) for size in fixed),
        MissesOnly(args.min, args.max, args.misses_period),
    ]
    print(f"{trace.name}: {len(trace.arrivals)} arrivals in {trace.duration_s:g} s")
    print(format_table([simulate(trace, policy, model) for policy in policies]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
