"""Request validation: what is accepted, and the 4xx for what is not."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import ApiError
from app.validation import build_job, check_version, parse_body
from runtimes.settings import Settings

SETTINGS = Settings(max_code_bytes=100, max_files=3, max_stdin_bytes=10)


def _error(body: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as info:
        build_job(body, SETTINGS)
    return info.value


def test_code_becomes_the_entry_file_with_defaults() -> None:
    job = build_job({"language": "py", "code": "print(1)"}, SETTINGS)
    assert job.language == "python" and job.files[0].name == "main.py"
    assert (job.timeout_s, job.memory_mb, job.stdin, job.args) == (10, 256, "", ())
    language, _, unique = job.execution_id.partition("-")  # its language names its keys' slot
    assert (language, len(unique)) == ("python", 32) and job.enqueued_at > 0


def test_files_keep_their_order_and_names() -> None:
    files = [{"name": "app.py", "content": "import lib"}, {"name": "pkg/lib.py", "content": ""}]
    job = build_job({"language": "python", "files": files}, SETTINGS)
    assert [f.name for f in job.files] == ["app.py", "pkg/lib.py"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "x"}, "language"),
        ({"language": "cobol", "code": "x"}, "language"),
        ({"language": "python", "version": 2.7, "code": "x"}, "version"),
        ({"language": "python"}, "code"),
        ({"language": "python", "code": "x", "files": []}, "code"),
        ({"language": "python", "code": 5}, "code"),
        (
            {"language": "python", "files": [{"name": "/etc/passwd", "content": ""}]},
            "files[0].name",
        ),
        ({"language": "python", "files": [{"name": "a/../../b", "content": ""}]}, "files[0].name"),
        ({"language": "python", "files": [{"name": ".hidden", "content": ""}]}, "files[0].name"),
        ({"language": "python", "files": [{"name": "a.py", "content": 1}]}, "files[0]"),
        ({"language": "python", "files": [{"name": "a", "content": ""}] * 2}, "files"),
        (
            {
                "language": "python",
                "files": [{"name": "a", "content": ""}, {"name": "a/b.py", "content": ""}],
            },
            "files",
        ),
        ({"language": "python", "code": "x", "timeout_s": 0}, "timeout_s"),
        ({"language": "python", "code": "x", "timeout_s": 31}, "timeout_s"),
        ({"language": "python", "code": "x", "timeout_s": True}, "timeout_s"),
        ({"language": "python", "code": "x", "memory_mb": 63}, "memory_mb"),
        ({"language": "python", "code": "x", "memory_mb": 513}, "memory_mb"),
        ({"language": "python", "code": "x", "args": "a b"}, "args"),
        ({"language": "python", "code": "x", "stdin": 3}, "stdin"),
        ({"language": "python", "code": "x", "colour": "blue"}, "colour"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(body: dict[str, Any], field: str) -> None:
    err = _error(body)
    assert (err.status, err.field) == (422, field)
    assert err.message


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"language": "python", "code": "x" * 101}, "code_too_large"),
        ({"language": "python", "code": "x", "stdin": "y" * 11}, "stdin_too_large"),
        (
            {"language": "python", "files": [{"name": f"f{i}", "content": ""} for i in range(4)]},
            "too_many_files",
        ),
    ],
)
def test_size_limits_are_413(body: dict[str, Any], code: str) -> None:
    err = _error(body)
    assert (err.status, err.code) == (413, code)


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'"x"', b"\xff"])
def test_bodies_that_are_not_json_objects_are_400(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        parse_body(raw)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("requested", "actual", "ok"),
    [("3.11", "3.11.2", True), ("3.11.2", "3.11.2", True), ("3.1", "3.11.2", False),
     ("2.7", "3.11.2", False), ("2.7", None, True)],
)  # fmt: skip
def test_a_requested_version_matches_the_image_s(
    requested: str, actual: str | None, ok: bool
) -> None:
    if ok:
        check_version("python", requested, actual)
    else:
        with pytest.raises(ApiError, match="python has version"):
            check_version("python", requested, actual)
