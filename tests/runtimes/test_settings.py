"""Settings come from CODERUNNER_* variables, with safe defaults and clear errors."""

from __future__ import annotations

import pytest

from runtimes.settings import Settings, SettingsError


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.redis_url, s.host, s.port) == (None, "127.0.0.1", 8000)
    assert s.pool_size_for("python") == s.pool_size


def test_values_and_per_language_pool_sizes() -> None:
    s = Settings.from_env(
        {
            "CODERUNNER_REDIS_URL": "redis://r:6379/1",
            "CODERUNNER_PORT": "9000",
            "CODERUNNER_POOL_SIZE": "4",
            "CODERUNNER_POOL_SIZE_PYTHON": "7",
            "CODERUNNER_CPUS": "0.5",
        }
    )
    assert (s.redis_url, s.port, s.cpus) == ("redis://r:6379/1", 9000, 0.5)
    assert s.pool_size_for("python") == 7 and s.pool_size_for("go") == 4


@pytest.mark.parametrize(
    "env",
    [{"CODERUNNER_PORT": "eighty"}, {"CODERUNNER_WORKER_SLOTS": "0"}, {"CODERUNNER_CPUS": "-1"}],
)
def test_bad_values_say_which_variable(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)
