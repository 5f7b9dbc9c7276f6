"""One frozen settings object per process, read from `CODERUNNER_*` variables."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

PREFIX = "CODERUNNER_"


class SettingsError(ValueError):
    """A `CODERUNNER_*` variable holds a value that cannot be used."""


def _int(env: Mapping[str, str], name: str, default: int, lo: int = 0) -> int:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name}={raw!r} is not a whole number") from None
    if value < lo:
        raise SettingsError(f"{PREFIX}{name}={value} must be at least {lo}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name}={raw!r} is not a number") from None
    if value <= 0:
        raise SettingsError(f"{PREFIX}{name}={value} must be positive")
    return value


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with safe defaults; see the README's Configuration table."""

    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    docker_url: str = "unix:///var/run/docker.sock"
    worker_id: str = field(default_factory=_default_worker_id)
    worker_slots: int = 8
    worker_metrics_port: int = 9100
    pool_size: int = 2
    pool_sizes: Mapping[str, int] = field(default_factory=dict)
    max_code_bytes: int = 256 * 1024
    max_files: int = 20
    max_stdin_bytes: int = 1024 * 1024
    max_output_bytes: int = 1024 * 1024
    max_request_bytes: int = 4 * 1024 * 1024
    result_ttl_s: int = 3600
    image_prefix: str = "coderunner"
    base_image: str = "coderunner-base:bookworm"
    container_runtime: str = "runc"
    workspace_mb: int = 64
    pids_limit: int = 64
    cpus: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build the settings from the environment (or a given mapping, for tests)."""
        env = os.environ if env is None else env
        d = cls()
        sizes_prefix = PREFIX + "POOL_SIZE_"
        pool_sizes = {
            key[len(sizes_prefix) :].lower(): _int(env, key[len(PREFIX) :], 0)
            for key in env
            if key.startswith(sizes_prefix)
        }
        return cls(
            redis_url=env.get(PREFIX + "REDIS_URL") or None,
            host=env.get(PREFIX + "HOST", d.host),
            port=_int(env, "PORT", d.port),
            docker_url=env.get(PREFIX + "DOCKER_URL", d.docker_url),
            worker_id=env.get(PREFIX + "WORKER_ID") or d.worker_id,
            worker_slots=_int(env, "WORKER_SLOTS", d.worker_slots, lo=1),
            worker_metrics_port=_int(env, "WORKER_METRICS_PORT", d.worker_metrics_port),
            pool_size=_int(env, "POOL_SIZE", d.pool_size),
            pool_sizes=pool_sizes,
            max_code_bytes=_int(env, "MAX_CODE_BYTES", d.max_code_bytes, lo=1),
            max_files=_int(env, "MAX_FILES", d.max_files, lo=1),
            max_stdin_bytes=_int(env, "MAX_STDIN_BYTES", d.max_stdin_bytes),
            max_output_bytes=_int(env, "MAX_OUTPUT_BYTES", d.max_output_bytes, lo=1),
            max_request_bytes=_int(env, "MAX_REQUEST_BYTES", d.max_request_bytes, lo=1024),
            result_ttl_s=_int(env, "RESULT_TTL_S", d.result_ttl_s, lo=1),
            image_prefix=env.get(PREFIX + "IMAGE_PREFIX", d.image_prefix),
            base_image=env.get(PREFIX + "BASE_IMAGE", d.base_image),
            container_runtime=env.get(PREFIX + "CONTAINER_RUNTIME", d.container_runtime),
            workspace_mb=_int(env, "WORKSPACE_MB", d.workspace_mb, lo=1),
            pids_limit=_int(env, "PIDS_LIMIT", d.pids_limit, lo=8),
            cpus=_float(env, "CPUS", d.cpus),
        )

    def pool_size_for(self, language: str) -> int:
        """How many warm containers to keep for `language`."""
        return self.pool_sizes.get(language, self.pool_size)
