"""The executor's output accounting: byte cap, truncation, UTF-8 split across chunks."""

from __future__ import annotations

from poolmgr.executor import Output


def test_utf8_split_across_chunks_is_not_mangled() -> None:
    out = Output(limit=1000)
    data = "héllo €".encode()
    assert out.add("stdout", data[:2]) + out.add("stdout", data[2:]) == "héllo €"


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    out = Output(limit=1000)
    text = out.add("stdout", b"ok\xff\xfe") + out.flush("stdout")
    assert text.startswith("ok") and "\ufffd" in text


def test_cap_keeps_the_first_bytes_across_streams() -> None:
    out = Output(limit=10)
    out.add("stdout", b"123456")
    out.add("stderr", b"abcdef")
    assert out.truncated
    assert (out.joined("stdout"), out.joined("stderr")) == ("123456", "abcd")
