"""The locked-down container profile every execution runs in, and the labels that find it."""

from __future__ import annotations

from typing import Any

from runtimes.registry import Runtime
from runtimes.settings import Settings

LABEL = "code-runner"
LABEL_WORKER = "code-runner.worker"
LABEL_LANGUAGE = "code-runner.language"
LABEL_CLUSTER = "code-runner.cluster"
RUNNER_UID = "10001:10001"
DEFAULT_MEMORY_MB = 256
WORKSPACE_OPTIONS = "rw,exec,nosuid,nodev,uid=10001,gid=10001,mode=0700"


def container_config(runtime: Runtime, settings: Settings) -> dict[str, Any]:
    """Arguments for `create_container`: one-shot, no network, read-only, unprivileged."""
    memory = DEFAULT_MEMORY_MB * 1024 * 1024
    return {
        "image": runtime.image(settings.image_prefix),
        "user": RUNNER_UID,
        "stdin_open": True,
        "tty": False,
        "network_disabled": True,
        "hostname": "sandbox",
        "working_dir": "/workspace",
        "labels": {
            LABEL: "1",
            LABEL_WORKER: settings.worker_id,
            LABEL_CLUSTER: settings.cluster,
            LABEL_LANGUAGE: runtime.language,
        },
        "host_config": {
            "network_mode": "none",
            "read_only": True,
            "tmpfs": {
                "/workspace": f"{WORKSPACE_OPTIONS},size={settings.workspace_mb}m",
                "/tmp": "rw,noexec,nosuid,nodev,size=16m,mode=1777",
            },
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "pids_limit": settings.pids_limit,
            "mem_limit": memory,
            "memswap_limit": memory,
            "nano_cpus": int(settings.cpus * 1e9),
            "ulimits": [{"Name": "nofile", "Soft": 256, "Hard": 256}],
            "runtime": settings.container_runtime_for(runtime.language),
            "ipc_mode": "none",
        },
    }
