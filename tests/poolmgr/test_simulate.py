"""The pool simulator: deterministic traces, an exact small-case model, and policies compared."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from poolmgr.simulate import (
    Demand,
    Fixed,
    MissesOnly,
    Model,
    Policy,
    Trace,
    bursts,
    diurnal,
    load_trace,
    main,
    poisson,
    simulate,
)
from runtimes.settings import MinSchedule, PoolPolicy

CLASSROOM = bursts(0.1, 3600, seed=1, size=10, every_s=300)


def test_traces_are_deterministic_for_a_seed() -> None:
    assert poisson(5, 600, seed=3) == poisson(5, 600, seed=3)
    assert poisson(5, 600, seed=3) != poisson(5, 600, seed=4)
    assert bursts(1, 600, seed=3) == bursts(1, 600, seed=3)
    assert diurnal(1, 600, seed=3) == diurnal(1, 600, seed=3)


def test_traces_have_their_shape() -> None:
    steady = poisson(5, 3600, seed=1).arrivals
    assert abs(len(steady) - 18000) < 400
    assert list(steady) == sorted(steady)
    assert sum(1 for t in CLASSROOM.arrivals if 300 <= t < 302) >= 10
    ramp = diurnal(2, 1000, seed=1).arrivals
    assert sum(1 for t in ramp if t < 100) < sum(1 for t in ramp if 450 <= t < 550) / 3


def test_a_trace_file_holds_one_arrival_per_line(tmp_path: Path) -> None:
    path = tmp_path / "arrivals.txt"
    path.write_text("# captured from the API log\n2.5\n\n0.5  # first\n1\n")
    assert load_trace(path) == Trace("arrivals.txt", (0.5, 1.0, 2.5), 2.5)
    path.write_text("0.5\nsoon\n")
    with pytest.raises(ValueError, match=r"arrivals.txt:2: 'soon'"):
        load_trace(path)


def test_idle_time_and_refills_follow_the_model() -> None:
    trace = Trace("spaced", (1.0, 2.0, 3.0), 4.0)
    report = simulate(trace, Fixed(1), Model(create_latency_s=0.35))
    assert (report.claims, report.cold_starts, report.peak_containers) == (3, 0, 1)
    # warm from 0.35 to the first claim, then 0.35 s after each claim until the next
    assert report.idle_container_s == pytest.approx(4 * 0.65)


def test_creates_queue_on_the_limiter_cold_starts_included() -> None:
    trace = Trace("rush", (1.5, 1.5, 1.5, 1.6), 3.0)
    report = simulate(trace, Fixed(4), Model(create_latency_s=1.0, max_creating=2))
    # two of the first four creates are ready at 1.0, the other two at 2.0
    assert report.cold_starts == 2


def test_containers_above_a_lowered_target_are_recycled() -> None:
    policy = PoolPolicy(min=1, window_s=10, hold_s=0)
    trace = Trace("one burst", (1.0,) * 4, 120.0)
    kept = simulate(trace, Demand(policy), Model(recycle_per_tick=0))
    recycled = simulate(trace, Demand(policy), Model())
    assert kept.peak_containers == recycled.peak_containers == 6
    # the 5 above min go one a tick once the burst leaves the window, instead of idling on
    assert kept.idle_container_s - recycled.idle_container_s > 5 * 100


def test_without_a_pool_every_claim_is_cold() -> None:
    report = simulate(poisson(1, 600, seed=1), Fixed(0), Model())
    assert report.cold_rate == 1.0
    assert (report.idle_container_s, report.peak_containers) == (0.0, 0)


def test_misses_only_resizes_to_the_last_period_misses() -> None:
    policy = MissesOnly(1, 4, period_s=10)
    assert policy.target(0.0) == 1
    for t in range(3):
        policy.record_claim(float(t), cold=True)
    policy.record_claim(4.0, cold=False)
    assert policy.target(9.9) == 1
    assert policy.target(10.0) == 3
    assert policy.target(20.0) == 1


def test_schedules_follow_the_trace_clock() -> None:
    lab = PoolPolicy(min=0, max=8, schedule=(MinSchedule(1, 2, 6),))
    policy = Demand(lab)
    assert [policy.target(t) for t in (0.0, 3600.0, 7200.0)] == [0, 6, 6]  # then the hold
    assert policy.target(7260.0) == 0
    assert simulate(Trace("quiet", (), 7200), Demand(lab), Model()).peak_containers == 6


def test_the_simulation_is_deterministic() -> None:
    trace = poisson(5, 1800, seed=1)
    first = simulate(trace, Demand(PoolPolicy()), Model())
    assert simulate(trace, Demand(PoolPolicy()), Model()) == first


def test_demand_sizing_beats_a_fixed_min_pool_on_bursts() -> None:
    policy = PoolPolicy()
    demand = simulate(CLASSROOM, Demand(policy), Model())
    fixed = simulate(CLASSROOM, Fixed(policy.min), Model())
    assert demand.cold_rate < fixed.cold_rate / 10


@pytest.mark.parametrize(
    "policy",
    [Demand(PoolPolicy(min=1, max=6)), Fixed(3), MissesOnly(1, 6, period_s=300)],
    ids=lambda policy: policy.name,
)
def test_reports_are_sane(policy: Policy) -> None:
    report = simulate(CLASSROOM, policy, Model())
    assert report.claims == len(CLASSROOM.arrivals)
    assert 0 <= report.cold_rate <= 1
    assert report.peak_containers <= 6
    assert 0 <= report.idle_container_s <= report.peak_containers * CLASSROOM.duration_s


def test_the_cli_prints_one_row_per_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--trace", "bursts", "--rate", "0.5", "--duration", "600"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("bursts 0.5/s")
    assert [line.split()[0] for line in lines[2:]] == ["demand", "fixed", "fixed", "misses-only"]


def test_the_cli_reads_a_trace_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "trace.txt"
    path.write_text("\n".join(str(t / 10) for t in range(100)))
    assert main(["--trace-file", str(path), "--min", "0", "--max", "2"]) == 0
    assert "fixed 2" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["--rate", "0"],
        ["--min", "3", "--max", "2"],
        ["--max-creating", "0"],
        ["--fixed", "-1"],
        ["--trace-file", "/nonexistent"],
    ],
)
def test_the_cli_refuses_unusable_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_the_module_runs_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "poolmgr.simulate", "--duration", "60"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    assert "misses-only" in result.stdout
