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
    """The engine API's create body: one-shot, no network, read-only, unprivileged."""
    memory = DEFAULT_MEMORY_MB * 1024 * 1024
    return {
        "Image": runtime.image(settings.image_prefix),
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
            "SecurityOpt": ["no-new-privileges"],
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
