"""The worker's Prometheus metrics (names from the contract)."""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import Counter, Gauge, Histogram

from runtimes.wire import Result

WARM = Gauge("code_runner_warm_containers", "Warm containers ready to claim", ["language"])
TARGET = Gauge("code_runner_pool_target", "Warm containers the pool aims to keep", ["language"])
FILL = Gauge("code_runner_pool_fill_ratio", "Warm containers / pool target", ["language"])
COLD_RATE = Gauge(
    "code_runner_cold_start_rate", "Cold starts / all starts over the demand window", ["language"]
)
STARTS = Counter(
    "code_runner_container_starts_total", "Containers handed to executions", ["language", "start"]
)
EXECUTIONS = Counter("code_runner_executions_total", "Finished executions", ["language", "status"])
DURATION = Histogram(
    "code_runner_execution_duration_seconds",
    "Time from claim to terminal status",
    ["language", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUEUE_WAIT = Histogram(
    "code_runner_queue_wait_seconds",
    "Time from acceptance to a worker claiming the job",
    ["language"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CLAIM = Histogram(
    "code_runner_claim_seconds",
    "From reading a job off the queue to its code written into a container",
    ["language", "start"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
CIRCUIT_OPEN = Gauge(
    "code_runner_pool_circuit_open", "1 while container creation is backing off", ["language"]
)
ACTIVE = Gauge("code_runner_active_executions", "Executions running on this worker", ["language"])


class StartWindow:
    """Warm and cold starts over a sliding window, for the cold-start rate.

    Pruned on every record too, so it stays bounded when nothing scrapes `/metrics`.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._starts: deque[tuple[float, bool]] = deque()

    def record(self, cold: bool, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._starts.append((now, cold))
        self._prune(now)

    def cold_rate(self, now: float | None = None) -> float:
        self._prune(time.monotonic() if now is None else now)
        if not self._starts:
            return 0.0
        return sum(cold for _, cold in self._starts) / len(self._starts)

    def __len__(self) -> int:
        return len(self._starts)

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        while self._starts and self._starts[0][0] < horizon:
            self._starts.popleft()


def count_end(result: Result) -> None:
    """Count an execution once, where its terminal status was actually recorded."""
    labels = (result.language, result.status.value)
    EXECUTIONS.labels(*labels).inc()
    run_ms = (result.timings.start_ms or 0.0) + (result.timings.run_ms or 0.0)
    DURATION.labels(*labels).observe(run_ms / 1e3)
