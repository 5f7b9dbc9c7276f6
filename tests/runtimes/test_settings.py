"""Settings come from CODERUNNER_* variables, with safe defaults and clear errors."""

from __future__ import annotations

import pytest

from runtimes.registry import RUNTIMES
from runtimes.settings import ApiKey, MinSchedule, PoolPolicy, Settings, SettingsError


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.redis_url, s.host, s.port) == (None, "127.0.0.1", 8000)
    assert s.pool_policy("python") == PoolPolicy()


def test_values_and_per_language_pool_policies() -> None:
    s = Settings.from_env(
        {
            "CODERUNNER_REDIS_URL": "redis://r:6379/1",
            "CODERUNNER_PORT": "9000",
            "CODERUNNER_POOL_MIN": "2",
            "CODERUNNER_POOL_MAX_PYTHON": "7",
            "CODERUNNER_POOL_SCHEDULE_PYTHON": "9-17:4, 22-2:1",
            "CODERUNNER_CPUS": "0.5",
        }
    )
    assert (s.redis_url, s.port, s.cpus) == ("redis://r:6379/1", 9000, 0.5)
    python = s.pool_policy("python")
    assert (python.min, python.max, python.demand_factor) == (2, 7, 1.5)
    assert python.schedule == (MinSchedule(9, 17, 4), MinSchedule(22, 2, 1))
    assert python.schedule[1].covers(23) and python.schedule[1].covers(1)
    assert not python.schedule[1].covers(2) and not python.schedule[0].covers(17)


@pytest.mark.parametrize(
    "env",
    [
        {"CODERUNNER_PORT": "eighty"},
        {"CODERUNNER_WORKER_SLOTS": "0"},
        {"CODERUNNER_CPUS": "-1"},
        {"CODERUNNER_POOL_SCHEDULE": "9to5:3"},
        {"CODERUNNER_POOL_SCHEDULE_PYTHON": "25-3:1"},
        {"CODERUNNER_MAX_QUEUE_S": "0"},
    ],
)
def test_bad_values_say_which_variable(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)


def test_max_below_min_is_refused() -> None:
    with pytest.raises(SettingsError, match="pool: pool min 5 and max 2"):
        Settings.from_env({"CODERUNNER_POOL_MIN": "5", "CODERUNNER_POOL_MAX": "2"})


def test_container_runtime_per_language() -> None:
    s = Settings.from_env({"CODERUNNER_CONTAINER_RUNTIME_PYTHON": "runsc"})
    assert s.container_runtime_for("python") == "runsc"
    assert s.container_runtime_for("go") == "runc"


def test_a_worker_serves_the_languages_it_is_given() -> None:
    assert Settings.from_env({}).worker_languages == tuple(RUNTIMES)
    chosen = Settings.from_env({"CODERUNNER_WORKER_LANGUAGES": "java, golang,java"})
    assert chosen.worker_languages == ("java", "go")
    with pytest.raises(SettingsError, match="cobol"):
        Settings.from_env({"CODERUNNER_WORKER_LANGUAGES": "python,cobol"})


def test_pool_defaults_follow_each_languages_weight() -> None:
    settings = Settings.from_env({"CODERUNNER_POOL_MAX_RUST": "1"})
    assert settings.pool_policy("python").max == RUNTIMES["python"].pool_max
    assert settings.pool_policy("java").max == RUNTIMES["java"].pool_max
    assert settings.pool_policy("rust").max == 1


def test_api_keys_name_users_and_tiers() -> None:
    settings = Settings.from_env({"CODERUNNER_API_KEYS": "k1:ann, k2:bob:premium,k3:cy:standard"})
    assert settings.api_keys == {
        "k1": ApiKey("ann"),
        "k2": ApiKey("bob", "premium"),
        "k3": ApiKey("cy", "standard"),
    }
    assert Settings.from_env({}).api_keys == {}


@pytest.mark.parametrize("raw", ["k1", "k1:", ":ann", "k1:ann:gold", "k1:ann:premium:x"])
def test_a_malformed_api_key_entry_is_refused_without_echoing_the_key(raw: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"CODERUNNER_API_KEYS": f"good:ann,{raw}"})
    assert "entry 2" in str(err.value)
    assert "k1" not in str(err.value)


def test_front_door_limits_and_per_language_queue_depth() -> None:
    settings = Settings.from_env(
        {
            "CODERUNNER_RATE_BURST": "5",
            "CODERUNNER_RATE_PER_S": "0.5",
            "CODERUNNER_MAX_CONCURRENT_PER_USER": "0",
            "CODERUNNER_MAX_QUEUE_DEPTH": "50",
            "CODERUNNER_MAX_QUEUE_DEPTH_JAVA": "10",
            "CODERUNNER_MAX_QUEUE_S": "120",
        }
    )
    assert settings.max_queue_s == 120 and Settings.from_env({}).max_queue_s == 600
    assert (settings.rate_burst, settings.rate_per_s, settings.max_concurrent_per_user) == (
        5,
        0.5,
        0,
    )
    assert settings.max_queue_depth("java") == 10
    assert settings.max_queue_depth("python") == 50


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, ""), ("", ""), ("json", "json"), ("TEXT", "text")]
)
def test_log_format(raw: str | None, expected: str) -> None:
    env = {} if raw is None else {"CODERUNNER_LOG_FORMAT": raw}
    assert Settings.from_env(env).log_format == expected


def test_a_bad_log_format_names_the_allowed_values() -> None:
    with pytest.raises(SettingsError, match=r"LOG_FORMAT='yaml' is not one of json, text"):
        Settings.from_env({"CODERUNNER_LOG_FORMAT": "yaml"})


def test_the_manifests_placeholder_key_is_refused() -> None:
    with pytest.raises(SettingsError, match="placeholder") as refused:
        Settings.from_env({"CODERUNNER_API_KEYS": "CHANGE-ME-to-a-long-random-key:demo:standard"})
    assert "to-a-long-random-key" not in str(refused.value)
