"""One frozen settings object per process, read from `CODERUNNER_*` variables."""

from __future__ import annotations

import math
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from runtimes.registry import RUNTIMES, lookup

PREFIX = "CODERUNNER_"
DEFAULT_MAX_QUEUE_DEPTH = 200


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


def _float(env: Mapping[str, str], name: str, default: float, zero_ok: bool = False) -> float:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        kind = "non-negative" if zero_ok else "positive"
        raise SettingsError(f"{PREFIX}{name}={raw!r} must be a {kind} number")
    return value


class PolicyError(SettingsError):
    """A pool policy whose bounds, durations or schedule cannot work."""


@dataclass(frozen=True)
class MinSchedule:
    """A higher floor during [start_hour, end_hour) of the local day; 22..6 wraps past midnight."""

    start_hour: int
    end_hour: int
    min: int

    def __post_init__(self) -> None:
        if not (0 <= self.start_hour <= 23 and 0 <= self.end_hour <= 24):
            raise PolicyError(f"schedule hours {self.start_hour}..{self.end_hour} are not 0..24")
        if self.start_hour == self.end_hour:
            raise PolicyError(f"schedule {self.start_hour}..{self.end_hour} covers no hour")
        if self.min < 0:
            raise PolicyError(f"schedule min {self.min} is negative")

    def covers(self, hour: int) -> bool:
        if self.start_hour < self.end_hour:
            return self.start_hour <= hour < self.end_hour
        return hour >= self.start_hour or hour < self.end_hour


@dataclass(frozen=True)
class PoolPolicy:
    """One language's sizing knobs; the defaults were chosen with poolmgr/simulate.py."""

    min: int = 1
    max: int = 8
    demand_factor: float = 1.5
    window_s: float = 300.0
    hold_s: float = 60.0
    schedule: tuple[MinSchedule, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.min <= self.max:
            raise PolicyError(f"pool min {self.min} and max {self.max} need 0 <= min <= max")
        if not (math.isfinite(self.demand_factor) and self.demand_factor > 0):
            raise PolicyError(f"demand factor {self.demand_factor} must be positive")
        if not (math.isfinite(self.window_s) and self.window_s > 0):
            raise PolicyError(f"demand window {self.window_s} s must be positive")
        if not (math.isfinite(self.hold_s) and self.hold_s >= 0):
            raise PolicyError(f"scale-down hold {self.hold_s} s must not be negative")
        for rule in self.schedule:
            if rule.min > self.max:
                raise PolicyError(f"schedule min {rule.min} is above the pool max {self.max}")

    def min_at(self, hour: int) -> int:
        """The floor during `hour` (0..23): the highest of `min` and the rules covering it."""
        return max([self.min, *(rule.min for rule in self.schedule if rule.covers(hour))])


def _schedule(raw: str, name: str) -> tuple[MinSchedule, ...]:
    """`"9-17:4,22-2:1"`: from 9 to 17 keep at least 4 warm; from 22 to 2 at least 1."""
    rules = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        try:
            hours, minimum = part.split(":")
            start, end = hours.split("-")
            numbers = int(start), int(end), int(minimum)
        except ValueError:
            raise SettingsError(f"{PREFIX}{name}: {part!r} is not START-END:MIN") from None
        try:
            rules.append(MinSchedule(*numbers))
        except PolicyError as exc:
            raise SettingsError(f"{PREFIX}{name}: {exc}") from None
    return tuple(rules)


def _pool_policy(env: Mapping[str, str], language: str) -> PoolPolicy:
    """Per-language variables (`..._PYTHON`) override the all-language ones, which override
    the language's own defaults (min 1, max by its weight)."""
    d = PoolPolicy(max=RUNTIMES[language].pool_max)

    def name(base: str) -> str:
        specific = f"{base}_{language.upper()}"
        return specific if PREFIX + specific in env else base

    try:
        return PoolPolicy(
            min=_int(env, name("POOL_MIN"), d.min),
            max=_int(env, name("POOL_MAX"), d.max),
            demand_factor=_float(env, name("POOL_FACTOR"), d.demand_factor),
            window_s=_float(env, name("POOL_WINDOW_S"), d.window_s),
            hold_s=_float(env, name("POOL_HOLD_S"), d.hold_s, zero_ok=True),
            schedule=_schedule(env.get(PREFIX + name("POOL_SCHEDULE"), ""), name("POOL_SCHEDULE")),
        )
    except PolicyError as exc:
        raise SettingsError(f"{language} pool: {exc}") from None


Tier = Literal["standard", "premium"]
TIERS: tuple[Tier, ...] = ("standard", "premium")


@dataclass(frozen=True)
class ApiKey:
    """Who a key belongs to, and the tier that orders their jobs."""

    user: str
    tier: Tier = "standard"


PLACEHOLDER_KEY = "CHANGE-ME"  # k8s/base/config.yaml ships one, so a forgotten edit fails loudly


def _api_keys(raw: str) -> Mapping[str, ApiKey]:
    """`key:user[:tier],...`; empty = the service is open (no keys)."""
    out: dict[str, ApiKey] = {}
    for item in (i.strip() for i in raw.split(",")):
        if not item:
            continue
        parts = item.split(":")
        tier = parts[2] if len(parts) == 3 else "standard"
        if len(parts) not in (2, 3) or not parts[0] or not parts[1] or tier not in TIERS:
            # The key itself is never echoed: only which entry and what shape was expected.
            raise SettingsError(
                f"{PREFIX}API_KEYS entry {len(out) + 1} is not key:user[:standard|premium]"
            )
        if parts[0].upper().startswith(PLACEHOLDER_KEY):
            raise SettingsError(
                f"{PREFIX}API_KEYS entry {len(out) + 1} is the manifests' placeholder, a key "
                "anyone can read: set your own (e.g. `openssl rand -hex 32`)"
            )
        out[parts[0]] = ApiKey(parts[1], "premium" if tier == "premium" else "standard")
    return out


def _per_language(env: Mapping[str, str], base: str, default: int) -> Mapping[str, int]:
    """`{language: value}` from `BASE_<LANG>`, else `BASE`, else `default`."""
    general = _int(env, base, default)
    return {lang: _int(env, f"{base}_{lang.upper()}", general) for lang in RUNTIMES}


def _languages(raw: str) -> tuple[str, ...]:
    """`"java,go"`: the languages a worker serves (all when empty); aliases are accepted."""
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        return tuple(RUNTIMES)
    unknown = [n for n in names if lookup(n) is None]
    if unknown:
        raise SettingsError(
            f"{PREFIX}WORKER_LANGUAGES: unknown {unknown}; known: {', '.join(sorted(RUNTIMES))}"
        )
    return tuple(dict.fromkeys(rt.language for n in names if (rt := lookup(n))))


LOG_FORMATS = ("json", "text")


def _log_format(raw: str) -> str:
    """`json` or `text`; empty = by command (json for `api` and `worker`, text otherwise)."""
    value = raw.strip().lower()
    if value and value not in LOG_FORMATS:
        raise SettingsError(f"{PREFIX}LOG_FORMAT={raw!r} is not one of {', '.join(LOG_FORMATS)}")
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
    worker_languages: tuple[str, ...] = tuple(RUNTIMES)
    compile_timeout_s: float = 20.0
    worker_metrics_port: int = 9100
    pool_policies: Mapping[str, PoolPolicy] = field(default_factory=dict)
    warm_ttl_s: float = 600.0
    max_concurrent_creates: int = 4
    heartbeat_ttl_s: int = 15
    reap_interval_s: float = 10.0
    cluster: str = ""
    max_code_bytes: int = 256 * 1024
    max_files: int = 20
    max_stdin_bytes: int = 1024 * 1024
    max_output_bytes: int = 1024 * 1024
    max_request_bytes: int = 4 * 1024 * 1024
    result_ttl_s: int = 3600
    image_prefix: str = "coderunner"
    base_image: str = "coderunner-base:bookworm"
    container_runtime: str = "runc"
    container_runtimes: Mapping[str, str] = field(default_factory=dict)
    workspace_mb: int = 64
    pids_limit: int = 64
    cpus: float = 1.0
    # Redis clients and client sockets: sized on purpose, see runtimes/redis_client.py.
    redis_max_connections: int = 100
    redis_maxmemory: str = "1gb"
    max_watchers_per_execution: int = 500
    max_sockets_per_client: int = 1000
    cors_origins: tuple[str, ...] = ()
    # The front door: who may call, how often, how much at once; 0 turns a limit off.
    api_keys: Mapping[str, ApiKey] = field(default_factory=dict)
    rate_burst: int = 10
    rate_per_s: float = 2.0
    max_concurrent_per_user: int = 2
    max_queue_depths: Mapping[str, int] = field(default_factory=dict)
    # An execution still queued this long after it was accepted ends `failed`, queue_timeout.
    max_queue_s: int = 600
    ws_send_timeout_s: float = 10.0
    ws_ping_interval_s: float = 20.0
    forwarded_allow_ips: str = ""
    log_format: str = ""  # "" = by command: json for `api` and `worker`, text otherwise

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build the settings from the environment (or a given mapping, for tests)."""
        env = os.environ if env is None else env
        d = cls()
        return cls(
            redis_url=env.get(PREFIX + "REDIS_URL") or None,
            host=env.get(PREFIX + "HOST", d.host),
            port=_int(env, "PORT", d.port),
            docker_url=env.get(PREFIX + "DOCKER_URL", d.docker_url),
            worker_id=env.get(PREFIX + "WORKER_ID") or d.worker_id,
            worker_slots=_int(env, "WORKER_SLOTS", d.worker_slots, lo=1),
            worker_languages=_languages(env.get(PREFIX + "WORKER_LANGUAGES", "")),
            compile_timeout_s=_float(env, "COMPILE_TIMEOUT_S", d.compile_timeout_s),
            worker_metrics_port=_int(env, "WORKER_METRICS_PORT", d.worker_metrics_port),
            pool_policies={lang: _pool_policy(env, lang) for lang in RUNTIMES},
            warm_ttl_s=_float(env, "WARM_TTL_S", d.warm_ttl_s),
            max_concurrent_creates=_int(
                env, "MAX_CONCURRENT_CREATES", d.max_concurrent_creates, lo=1
            ),
            heartbeat_ttl_s=_int(env, "HEARTBEAT_TTL_S", d.heartbeat_ttl_s, lo=1),
            reap_interval_s=_float(env, "REAP_INTERVAL_S", d.reap_interval_s),
            cluster=env.get(PREFIX + "CLUSTER", d.cluster),
            max_code_bytes=_int(env, "MAX_CODE_BYTES", d.max_code_bytes, lo=1),
            max_files=_int(env, "MAX_FILES", d.max_files, lo=1),
            max_stdin_bytes=_int(env, "MAX_STDIN_BYTES", d.max_stdin_bytes),
            max_output_bytes=_int(env, "MAX_OUTPUT_BYTES", d.max_output_bytes, lo=1),
            max_request_bytes=_int(env, "MAX_REQUEST_BYTES", d.max_request_bytes, lo=1024),
            result_ttl_s=_int(env, "RESULT_TTL_S", d.result_ttl_s, lo=1),
            image_prefix=env.get(PREFIX + "IMAGE_PREFIX", d.image_prefix),
            base_image=env.get(PREFIX + "BASE_IMAGE", d.base_image),
            container_runtime=env.get(PREFIX + "CONTAINER_RUNTIME", d.container_runtime),
            container_runtimes={
                lang: env[f"{PREFIX}CONTAINER_RUNTIME_{lang.upper()}"]
                for lang in RUNTIMES
                if f"{PREFIX}CONTAINER_RUNTIME_{lang.upper()}" in env
            },
            workspace_mb=_int(env, "WORKSPACE_MB", d.workspace_mb, lo=1),
            pids_limit=_int(env, "PIDS_LIMIT", d.pids_limit, lo=8),
            cpus=_float(env, "CPUS", d.cpus),
            # Redis clients and client sockets
            redis_max_connections=_int(env, "REDIS_MAX_CONNECTIONS", d.redis_max_connections, lo=2),
            redis_maxmemory=env.get(PREFIX + "REDIS_MAXMEMORY") or d.redis_maxmemory,
            max_watchers_per_execution=_int(
                env, "MAX_WATCHERS_PER_EXECUTION", d.max_watchers_per_execution, lo=1
            ),
            max_sockets_per_client=_int(
                env, "MAX_SOCKETS_PER_CLIENT", d.max_sockets_per_client, lo=1
            ),
            cors_origins=tuple(
                o.strip() for o in env.get(PREFIX + "CORS_ORIGINS", "").split(",") if o.strip()
            ),
            api_keys=_api_keys(env.get(PREFIX + "API_KEYS", "")),
            rate_burst=_int(env, "RATE_BURST", d.rate_burst),
            rate_per_s=_float(env, "RATE_PER_S", d.rate_per_s, zero_ok=True),
            max_concurrent_per_user=_int(env, "MAX_CONCURRENT_PER_USER", d.max_concurrent_per_user),
            max_queue_depths=_per_language(env, "MAX_QUEUE_DEPTH", DEFAULT_MAX_QUEUE_DEPTH),
            max_queue_s=_int(env, "MAX_QUEUE_S", d.max_queue_s, lo=1),
            ws_send_timeout_s=_float(env, "WS_SEND_TIMEOUT_S", d.ws_send_timeout_s),
            ws_ping_interval_s=_float(env, "WS_PING_INTERVAL_S", d.ws_ping_interval_s),
            forwarded_allow_ips=env.get(PREFIX + "FORWARDED_ALLOW_IPS", d.forwarded_allow_ips),
            log_format=_log_format(env.get(PREFIX + "LOG_FORMAT", "")),
        )

    def container_runtime_for(self, language: str) -> str:
        """The OCI runtime for `language`'s sandboxes (`runsc` for gVisor)."""
        return self.container_runtimes.get(language, self.container_runtime)

    def max_queue_depth(self, language: str) -> int:
        """Unclaimed jobs of `language` past which new standard jobs are shed (0: never)."""
        return self.max_queue_depths.get(language, DEFAULT_MAX_QUEUE_DEPTH)

    def pool_policy(self, language: str) -> PoolPolicy:
        """How `language`'s warm pool is sized."""
        return self.pool_policies.get(language) or PoolPolicy()
