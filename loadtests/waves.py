"""Locust waves of editor users against a local code-runner that this script starts.

    python -m loadtests.waves [--waves 20,40,60,100] [--seconds 60] [--out DIR]

Starts `coderunner dev` (private redis, the front door's per-client limits off, python,
javascript and bash workers), then runs `loadtests/locustfile.py` headless once per wave of
N concurrent users (all spawned at once) for --seconds each. Writes, in --out:
- `wave-N_stats.csv`, `wave-N_by_type.csv`, ... and `wave-N.html`: Locust's own reports;
- `waves.csv`: per wave, users, runs/s, failed runs, p50/p95/p99 of `exit` and `first output`;
- `waves.png`: those percentiles and the throughput per wave;
and prints the table. Each wave is bounded: Locust is stopped --seconds + 60 s after it began.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loadtests.harness import own_server

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
SERVER_ENV = {
    "CODERUNNER_WORKER_LANGUAGES": "python,javascript,bash",
    "CODERUNNER_POOL_MIN": "2",
    "CODERUNNER_POOL_MIN_PYTHON": "4",
}
TYPES = {"exit": "exit", "first output": "first"}
FIELDS = ["users", "runs_per_s", "failures"] + [
    f"{short}_p{q}_ms" for short in TYPES.values() for q in (50, 95, 99)
]
STOP_GRACE_S = 60  # past --seconds: locust's own stop, running users' last runs, its reports


def run_wave(base: str, users: int, seconds: int, out: Path) -> dict[str, Any]:
    """One headless Locust run of `users` editor users: its row of `waves.csv`."""
    prefix = out / f"wave-{users}"
    cmd = [
        *(sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary"),
        *("-u", str(users), "-r", str(users), "--run-time", f"{seconds}s", "--stop-timeout", "20"),
        *("--host", base, "--csv", str(prefix), "--html", f"{prefix}.html"),
    ]
    with open(f"{prefix}.log", "w") as log:
        # Locust exits 1 when any request failed: the failures are in the row, not an error.
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=seconds + STOP_GRACE_S)
    return wave_row(users, Path(f"{prefix}_by_type.csv"))


def wave_row(users: int, by_type: Path) -> dict[str, Any]:
    """Flatten the locustfile's per-type summary into one row."""
    with open(by_type, newline="") as f:
        stats = {row["type"]: row for row in csv.DictReader(f)}
    row: dict[str, Any] = {
        "users": users,
        "runs_per_s": stats["exit"]["runs_per_s"],
        "failures": stats["exit"]["failures"],
    }
    for kind, short in TYPES.items():
        for q in (50, 95, 99):
            row[f"{short}_p{q}_ms"] = stats[kind][f"p{q}_ms"]
    return row


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Latency percentiles (log scale) and throughput, per wave."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    users = [r["users"] for r in rows]
    fig, (lat, tput) = plt.subplots(1, 2, figsize=(11, 4.2))
    for short, style in (("exit", "-"), ("first", "--")):
        for q, colour in ((50, "tab:blue"), (95, "tab:orange"), (99, "tab:red")):
            ms = [_num(r[f"{short}_p{q}_ms"]) for r in rows]
            lat.plot(users, ms, style, color=colour, marker="o", label=f"{short} p{q}")
    lat.set(xlabel="concurrent users", ylabel="ms from run", yscale="log", title="latency")
    lat.legend(fontsize=8)
    tput.bar([str(u) for u in users], [_num(r["runs_per_s"]) for r in rows])
    tput.set(xlabel="concurrent users", ylabel="runs/s", title="throughput")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _num(value: Any) -> float:
    return float(value) if value not in ("", None) else float("nan")


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ("users", "runs/s", "failed", "exit p50/p95/p99 ms", "first p50/p95/p99 ms")
    print("\n{:>5} {:>7} {:>6} {:>22} {:>22}".format(*head))
    for r in rows:
        ex = "/".join(str(r[f"exit_p{q}_ms"]) for q in (50, 95, 99))
        fo = "/".join(str(r[f"first_p{q}_ms"]) for q in (50, 95, 99))
        print(f"{r['users']:>5} {r['runs_per_s']:>7} {r['failures']:>6} {ex:>22} {fo:>22}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waves", default="20,40,60,100", help="users per wave, comma-separated")
    parser.add_argument("--seconds", type=int, default=60, help="length of each wave")
    parser.add_argument("--out", type=Path, default=Path("loadtest-waves"))
    args = parser.parse_args()
    waves = [int(n) for n in args.waves.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)

    print("starting coderunner dev ...", flush=True)
    rows = []
    with own_server(**SERVER_ENV) as base:
        for i, users in enumerate(waves):
            if i:
                time.sleep(5)  # the last wave's runs end and the pools refill
            print(f"wave of {users} users for {args.seconds} s ...", flush=True)
            t0 = time.monotonic()
            rows.append(run_wave(base, users, args.seconds, args.out))
            row = rows[-1]
            print(
                f"  {row['runs_per_s']} runs/s, {row['failures']} failed,"
                f" exit p95 {row['exit_p95_ms']} ms ({time.monotonic() - t0:.0f} s)",
                flush=True,
            )
    write_csv(rows, args.out / "waves.csv")
    plot(rows, args.out / "waves.png")
    print_table(rows)
    print(f"\n{args.out}/waves.csv, {args.out}/waves.png, {args.out}/wave-N.html")


if __name__ == "__main__":
    main()
