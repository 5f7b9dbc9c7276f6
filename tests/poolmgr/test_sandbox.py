"""Every sandbox carries the shipped seccomp profile: Docker's default, minus what a code runner
never needs (what those calls return inside a container is checked in tests/app/test_sandbox)."""

from __future__ import annotations

import json
from typing import Any

from poolmgr.sandbox import container_config, seccomp_profile
from runtimes.registry import RUNTIMES
from runtimes.settings import Settings


def rules() -> list[dict[str, Any]]:
    syscalls: list[dict[str, Any]] = json.loads(seccomp_profile())["syscalls"]
    return syscalls


def allowed() -> set[str]:
    return {
        name for rule in rules() if rule["action"] == "SCMP_ACT_ALLOW" for name in rule["names"]
    }


def test_every_container_gets_the_profile_inline() -> None:
    config = container_config(RUNTIMES["python"], Settings())
    assert f"seccomp={seccomp_profile()}" in config["HostConfig"]["SecurityOpt"]


def test_io_uring_is_not_implemented_inside() -> None:
    uring = {"io_uring_setup", "io_uring_enter", "io_uring_register"}
    assert not uring & allowed()
    assert any(set(r["names"]) == uring and r.get("errnoRet") == 38 for r in rules())


def test_no_rule_depends_on_capabilities_or_allows_tracing() -> None:
    assert not any("caps" in r.get("includes", {}) | r.get("excludes", {}) for r in rules())
    assert not {"ptrace", "process_vm_readv", "process_vm_writev", "bpf", "mount"} & allowed()
    assert {"clone", "execve", "mmap", "futex", "rseq", "socket"} <= allowed()
