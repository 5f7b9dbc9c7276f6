"""`/openapi.json`: valid OpenAPI 3.1, the app's routes exactly, the validator's fields, and
schemas that the app's real answers satisfy."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.routing import Route, WebSocketRoute

from app import validation
from app.main import create_app
from app.openapi import RATE_HEADERS, document
from coderunner.redis_server import EmbeddedRedis
from runtimes import wire
from runtimes.lifecycle import Status
from runtimes.registry import RUNTIMES
from runtimes.settings import Settings
from tests.app.serving import serving

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    """The document as a client reads it: through JSON."""
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(document(Settings())))
    return loaded


def _app_operations() -> set[tuple[str, str]]:
    """(path, method) of every HTTP route; HEAD is Starlette's own answer to every GET."""
    app = create_app(Settings(), "redis://unused")
    operations = set()
    for route in app.routes:
        if isinstance(route, WebSocketRoute):
            continue
        assert isinstance(route, Route), route
        methods = set(route.methods or ())
        assert "HEAD" not in methods or "GET" in methods, route.path
        operations |= {(route.path_format, m.lower()) for m in methods - {"HEAD"}}
    return operations


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, m) for path, item in doc["paths"].items() for m in item if m in METHODS}


def _operations(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(path, item[m]) for path, item in doc["paths"].items() for m in item if m in METHODS]


def _schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = doc["components"]["schemas"][name]
    return schema


def _validator(doc: dict[str, Any], name: str) -> Draft202012Validator:
    """A validator of the component `name`, with the document's other components to refer to."""
    return Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    )


def test_every_route_is_documented_and_every_documented_route_exists(
    doc: dict[str, Any],
) -> None:
    app, documented = _app_operations(), _documented(doc)
    assert app - documented == set(), "routes missing from the document"
    assert documented - app == set(), "documented routes the app does not have"


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1.")
    validate(doc)
    ids = [operation["operationId"] for _, operation in _operations(doc)]
    assert len(ids) == len(set(ids))


def test_the_api_needs_a_key_and_the_rest_is_open(doc: dict[str, Any]) -> None:
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, operation in _operations(doc):
        if path.startswith("/api/v1/"):
            assert operation["security"] == [{"bearer": []}], path
            assert "401" in operation["responses"], path
        else:
            assert operation["security"] == [], path
    assert set(doc["x-websockets"]) == {"/ws/run", "/ws/execution/{execution_id}"}


def test_the_request_schema_is_the_validators(doc: dict[str, Any]) -> None:
    request = _schema(doc, "ExecuteRequest")
    assert set(request["properties"]) == validation._FIELDS
    for name, schema in request["properties"].items():
        assert schema.get("description"), f"{name} is not described"
    properties = request["properties"]
    timeout, memory, args = properties["timeout_s"], properties["memory_mb"], properties["args"]
    assert (timeout["minimum"], timeout["maximum"]) == wire.TIMEOUT_RANGE
    assert (memory["minimum"], memory["maximum"]) == validation.MEMORY_RANGE
    assert args["maxItems"] == validation.MAX_ARGS
    # The defaults are the ones the validator fills in.
    job = validation.build_job({"language": "python", "code": ""}, Settings())
    for name in ("timeout_s", "memory_mb", "stdin", "interactive", "tty"):
        assert properties[name]["default"] == getattr(job, name), name
    assert properties["args"]["default"] == list(job.args)


def test_the_result_schemas_are_the_wire_formats(doc: dict[str, Any]) -> None:
    result, timings = _schema(doc, "Result"), _schema(doc, "Timings")
    assert set(result["properties"]) == {f.name for f in fields(wire.Result)}
    assert set(timings["properties"]) == {f.name for f in fields(wire.Timings)}
    assert result["properties"]["status"]["enum"] == [s.value for s in Status]
    assert _schema(doc, "Runtime")["properties"]["language"]["enum"] == list(RUNTIMES)


def test_the_app_serves_the_document(redis_url: str, doc: dict[str, Any]) -> None:
    with serving(redis_url) as client:
        reply = client.request("GET", "/openapi.json")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.body == doc


def test_real_answers_fit_their_schemas(doc: dict[str, Any]) -> None:
    """Against an app with no worker: a job stays queued until it is aborted."""
    with EmbeddedRedis() as redis, serving(redis.url) as client:
        queued = client.request(
            "POST", "/api/v1/execute", {"language": "python", "code": "print(1)"}
        )
        refused = client.request("POST", "/api/v1/execute", {"language": "cobol", "code": "x"})
        execution_id = queued.body["execution_id"]
        aborted = client.request("DELETE", f"/api/v1/execution/{execution_id}")
        result = client.request("GET", f"/api/v1/execution/{execution_id}")
        unknown = client.request("GET", "/api/v1/execution/nope")
        runtimes = client.request("GET", "/api/v1/runtimes")
        health = client.request("GET", "/healthz")
        ready = client.request("GET", "/readyz")
    assert (queued.status, refused.status, aborted.status) == (202, 422, 200)
    _validator(doc, "Accepted").validate(queued.body)
    assert queued.body["estimated_wait_ms"] is None  # no worker serves python here
    for reply in (queued, refused):
        assert all(name in reply.headers for name in RATE_HEADERS), reply.headers
    for reply in (refused, unknown):
        _validator(doc, "Error").validate(reply.body)
    for reply in (aborted, result):
        _validator(doc, "Result").validate(reply.body)
    assert result.body["status"] == "aborted"
    for runtime in runtimes.body:
        _validator(doc, "Runtime").validate(runtime)
    _validator(doc, "Health").validate(health.body)
    _validator(doc, "Readiness").validate(ready.body)
