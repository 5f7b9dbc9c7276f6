"""The CPU benchmark's parsing and attribution, on made-up /proc texts: no Docker."""

from __future__ import annotations

import os

from loadtests.bench_cpu import ProcStat, busy_ms, cpuacct_path, parse_pid_stat, rows_of

# pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
# utime stime cutime cstime priority nice threads itrealvalue starttime ...
STAT = "4242 (a (b) c)) S 7 4242 4242 0 -1 4194560 10 0 0 0 11 22 33 44 20 0 1 0 9876 1000 5"


def test_a_comm_with_spaces_and_parentheses_is_read_whole() -> None:
    assert parse_pid_stat(STAT) == ProcStat("a (b) c)", ppid=7, start=9876, own=33, reaped=77)


def test_machine_cpu_is_user_nice_system_irq_softirq() -> None:
    text = "cpu  100 2 30 9000 50 4 6 7 0 0\ncpu0 50 1 15 4500 25 2 3 3 0 0\n"
    ticks = 100 + 2 + 30 + 4 + 6  # not idle, iowait or steal
    assert busy_ms(text) == ticks * 1000 / os.sysconf("SC_CLK_TCK")


def test_the_cpuacct_line_is_found_among_v1_controllers() -> None:
    text = "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n0::/\n"
    assert cpuacct_path(text) == "/docker/abc"
    assert cpuacct_path("0::/user.slice\n") == "/"


def test_rows_count_each_process_once() -> None:
    def rows(pid: int, comm: str, ppid: int, cgroup: str = "/") -> list[tuple[str, int]]:
        return rows_of(pid, ProcStat(comm, ppid, 0, own=5, reaped=3), cgroup, server=100)

    assert rows(50, "containerd", 40, "/bench") == [("containerd", 5)]  # its children: shims
    assert rows(60, "python3", 55, "/docker/abc") == []  # in a container's cgroup
    assert rows(os.getpid(), "python3", 1) == [
        ("load generator (this script)", 5),
        ("docker CLI", 3),
    ]
    assert rows(30, "kworker/0:1", 2) == [("kernel threads", 5)]
    assert rows(40, "dockerd", 1) == [("dockerd", 8)]
    assert rows(100, "python3", os.getpid()) == [("coderunner dev (API + worker)", 8)]
    assert rows(101, "redis-server", 100) == [("redis-server", 8)]
    assert rows(200, "bash", 1) == [("other processes", 5)]
