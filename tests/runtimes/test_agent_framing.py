"""The agent protocol's framing survives any chunking of the transport."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runtimes.agent import protocol as agent

frames = st.lists(
    st.tuples(st.sampled_from([agent.STDOUT, agent.STDERR, agent.EXIT]), st.binary(max_size=300)),
    max_size=20,
)


@given(frames, st.lists(st.integers(min_value=1, max_value=50), min_size=1))
def test_frames_survive_any_chunking(items: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    wire = b"".join(agent.frame(kind, payload) for kind, payload in items)
    reader = agent.FrameReader()
    out: list[tuple[bytes, bytes]] = []
    pos, i = 0, 0
    while pos < len(wire):
        step = cuts[i % len(cuts)]
        out.extend(reader.feed(wire[pos : pos + step]))
        pos, i = pos + step, i + 1
    assert out == items


def test_partial_frame_waits_for_the_rest() -> None:
    reader = agent.FrameReader()
    raw = agent.frame(agent.STDOUT, b"hello")
    assert list(reader.feed(raw[:7])) == []
    assert list(reader.feed(raw[7:])) == [(agent.STDOUT, b"hello")]
