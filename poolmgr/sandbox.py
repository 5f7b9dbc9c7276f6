"""The locked-down container profile every execution runs in, and the labels that find it."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from runtimes.runtime import Runtime
from runtimes.settings import Settings

LABEL = "code-runner"
LABEL_WORKER = "code-runner.worker"
LABEL_LANGUAGE = "code-runner.language"
LABEL_CLUSTER = "code-runner.cluster"
VERSION_LABEL = "code-runner.version"  # on a runtime image: its language's version
RUNNER_UID = "10001:10001"
DEFAULT_MEMORY_MB = 256
WORKSPACE_OPTIONS = "rw,exec,nosuid,nodev,uid=10001,gid=10001,mode=0700"
# The environment of the agent and so of every program; a runtime adds its own.
PROGRAM_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/workspace",
    "LANG": "C.UTF-8",
    "TMPDIR": "/tmp",
}


@functools.cache
def seccomp_profile() -> str:
    """The sandbox's seccomp profile, inline as the engine API takes it (`seccomp=<json>`).

    `seccomp.json` is Docker's default profile (moby's profiles/seccomp/default.json as
    Docker 23-24 ship it) with less in it, so the engine's version does not decide:
    - io_uring_setup, io_uring_enter, io_uring_register fail with ENOSYS. io_uring is a
      large kernel surface behind many container escapes, and the operations it runs
      bypass seccomp's per-call filter; Docker allowed it until 25 (moby#46762). ENOSYS,
      not EPERM, makes libraries (libuv, tokio, ...) fall back to plain calls.
    - ptrace, process_vm_readv, process_vm_writev: no runtime we ship reads or steers
      another process (a debugger or a sanitizer's leak check would).
    - every rule gated on a capability (mount, unshare, setns, bpf, perf_event_open,
      kcmp, pidfd_getfd, module loading, clock setting, ...): the sandbox holds none, so
      these never applied; without them the calls stay refused even if one were granted.
    Docker's default already refuses keyctl, add_key, request_key, userfaultfd, kexec_*,
    and more, and clone3 (ENOSYS, so libc uses clone, whose namespace flags it checks).
    gVisor (runsc) does not apply the profile, its own kernel is the boundary there (with
    `--oci-seccomp` the 2022 runsc ignores errnoRet: clone3 gets EPERM, threads fail).
    """
    text = Path(__file__).with_name("seccomp.json").read_text(encoding="utf-8")
    return json.dumps(json.loads(text), separators=(",", ":"))


def container_config(runtime: Runtime, settings: Settings) -> dict[str, Any]:
    """The engine API's create body: one-shot, no network, read-only, unprivileged."""
    memory = DEFAULT_MEMORY_MB * 1024 * 1024
    return {
        "Image": runtime.image(settings.image_prefix),
        "Cmd": runtime.agent_command(),
        "Env": [f"{k}={v}" for k, v in {**PROGRAM_ENV, **runtime.env}.items()],
        "User": RUNNER_UID,
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "OpenStdin": True,
        "StdinOnce": False,
        "Tty": False,
        "NetworkDisabled": True,
        "Hostname": "sandbox",
        "WorkingDir": "/workspace",
        "Labels": {
            LABEL: "1",
            LABEL_WORKER: settings.worker_id,
            LABEL_CLUSTER: settings.cluster,
            LABEL_LANGUAGE: runtime.language,
        },
        "HostConfig": {
            "NetworkMode": "none",
            "ReadonlyRootfs": True,
            "Tmpfs": {
                "/workspace": f"{WORKSPACE_OPTIONS},size={settings.workspace_mb}m",
                "/tmp": "rw,noexec,nosuid,nodev,size=16m,mode=1777",
            },
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges", f"seccomp={seccomp_profile()}"],
            "PidsLimit": settings.pids_limit,
            "Memory": memory,
            "MemorySwap": memory,
            "NanoCpus": int(settings.cpus * 1e9),
            "Ulimits": [
                {"Name": "nofile", "Soft": 256, "Hard": 256},
                {"Name": "core", "Soft": 0, "Hard": 0},
            ],
            # The output is streamed by the worker; dockerd must not also write it to disk.
            "LogConfig": {"Type": "none", "Config": {}},
            "Runtime": settings.container_runtime_for(runtime.language),
            "IpcMode": "none",
        },
    }
