"""What the HTTP API refuses, and how it fails: JSON only, no CORS by default, a full or
silent Redis is a 503 (never a 500). The app runs in this process with no worker."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import anyio
import pytest
import redis
from redis.exceptions import OutOfMemoryError

from app import relay
from coderunner.redis_server import EmbeddedRedis
from runtimes import keys
from runtimes.settings import Settings
from tests.app.serving import serving
from tests.client import Client

JOB = {"language": "python", "code": "print(1)"}
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type",
}


@pytest.fixture
def api(redis_url: str) -> Iterator[Client]:
    with serving(redis_url) as client:
        yield client


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(maxmemory="4mb") as server:
        yield server


def _header(reply_headers: dict[str, str], name: str) -> str | None:
    return {k.lower(): v for k, v in reply_headers.items()}.get(name.lower())


def _allowed_origin(reply_headers: dict[str, str]) -> str | None:
    return _header(reply_headers, "Access-Control-Allow-Origin")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_declared_json_is_415(api: Client, content_type: str) -> None:
    reply = api.request("POST", "/api/v1/execute", JOB, headers={"Content-Type": content_type})
    assert reply.status == 415
    assert reply.body["error"]["code"] == "unsupported_media_type"


def test_a_body_without_content_type_is_415(api: Client) -> None:
    host, port = api.base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", "/api/v1/execute", body=b'{"language": "python", "code": "1"}')
        reply = conn.getresponse()
        assert reply.status == 415, reply.read()
    finally:
        conn.close()


def test_json_with_a_charset_is_accepted(api: Client) -> None:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    assert api.request("POST", "/api/v1/execute", JOB, headers=headers).status == 202


def test_no_cors_headers_by_default(api: Client) -> None:
    headers = {"Origin": "https://elsewhere.example", **PREFLIGHT}
    preflight = api.request("OPTIONS", "/api/v1/execute", headers=headers)
    assert _allowed_origin(preflight.headers) is None
    plain = api.request("GET", "/api/v1/runtimes", headers={"Origin": "https://elsewhere.example"})
    assert plain.status == 200 and _allowed_origin(plain.headers) is None


def test_configured_cors_origins_and_no_others(redis_url: str) -> None:
    settings = Settings(cors_origins=("https://editor.example",))
    with serving(redis_url, settings) as api:
        listed = {"Origin": "https://editor.example", **PREFLIGHT}
        reply = api.request("OPTIONS", "/api/v1/execute", headers=listed)
        assert reply.status == 200 and _allowed_origin(reply.headers) == "https://editor.example"
        unlisted = {"Origin": "https://elsewhere.example", **PREFLIGHT}
        reply = api.request("OPTIONS", "/api/v1/execute", headers=unlisted)
        assert _allowed_origin(reply.headers) is None


def test_the_embedded_redis_refuses_writes_when_full_and_evicts_nothing(
    own_redis: EmbeddedRedis,
) -> None:
    with redis.Redis(unix_socket_path=str(own_redis.socket)) as client:
        assert client.config_get("maxmemory") == {"maxmemory": str(4 * 1024 * 1024)}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}


def test_a_full_redis_is_a_503_not_a_500(own_redis: EmbeddedRedis) -> None:
    with redis.Redis(unix_socket_path=str(own_redis.socket)) as filler:
        for size in (100_000, 1_000, 10):  # up to the last few bytes
            with pytest.raises(OutOfMemoryError):
                for i in range(100_000):
                    filler.set(f"filler:{size}:{i}", b"x" * size)
        with serving(own_redis.url) as api:
            reply = api.request("POST", "/api/v1/execute", JOB)
    assert reply.status == 503, reply
    assert reply.body["error"]["code"] == "queue_full"
    assert _header(reply.headers, "Retry-After")


def test_a_subscription_redis_never_confirms_is_a_503_and_nothing_happens(
    own_redis: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def deaf(_: relay.Relay) -> None:  # reads no pub/sub message: nothing is confirmed
        await anyio.sleep_forever()

    monkeypatch.setattr(relay.Relay, "run", deaf)
    monkeypatch.setattr(relay, "SUBSCRIBE_TIMEOUT_S", 0.3)
    check = redis.Redis(unix_socket_path=str(own_redis.socket))
    with serving(own_redis.url) as api:
        waited = api.request("POST", "/api/v1/execute?wait=true", JOB)
        assert waited.status == 503, waited
        assert waited.body["error"]["code"] == "queue_unavailable"
        assert _header(waited.headers, "Retry-After")
        assert check.xlen(keys.job_stream("python")) == 0  # refused before it was queued
        queued = api.request("POST", "/api/v1/execute", JOB).body["execution_id"]
        aborted = api.request("DELETE", f"/api/v1/execution/{queued}")
        assert aborted.status == 503, aborted
        assert api.request("GET", f"/api/v1/execution/{queued}").body["status"] == "queued"
    check.close()


def test_the_socket_redis_and_cors_settings_from_the_environment() -> None:
    assert (Settings().redis_max_connections, Settings().redis_maxmemory) == (100, "1gb")
    settings = Settings.from_env(
        {
            "CODERUNNER_CORS_ORIGINS": " https://a.example, https://b.example ,",
            "CODERUNNER_REDIS_MAX_CONNECTIONS": "20",
            "CODERUNNER_REDIS_MAXMEMORY": "256mb",
            "CODERUNNER_MAX_WATCHERS_PER_EXECUTION": "7",
            "CODERUNNER_MAX_SOCKETS_PER_CLIENT": "9",
        }
    )
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert (settings.redis_max_connections, settings.redis_maxmemory) == (20, "256mb")
    assert (settings.max_watchers_per_execution, settings.max_sockets_per_client) == (7, 9)
    assert Settings.from_env({}).cors_origins == ()
