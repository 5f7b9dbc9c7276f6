"""The agent buffers a program's input only while the program can still read it, and only so
much: a flood of STDIN frames must not grow PID 1 until the sandbox is OOM-killed."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from runtimes import agent

FLOOD = agent.frame(agent.STDIN, b"x" * agent.CHUNK) * 256  # 16 MiB


def mid_run() -> tuple[agent.Session, int]:
    """A session mid-run, and the read end of its program's stdin (read only when a test says)."""
    session = agent.Session(control=-1, out=-1)  # frames are fed in directly; none are sent
    program_stdin, session.stdin_w = os.pipe()
    os.set_blocking(session.stdin_w, False)
    return session, program_stdin


def close(session: agent.Session) -> None:
    if session.stdin_w is not None:
        os.close(session.stdin_w)
    session.sel.close()


@pytest.fixture
def run() -> Iterator[tuple[agent.Session, int]]:
    session, program_stdin = mid_run()
    yield session, program_stdin
    os.close(program_stdin)
    close(session)


def feed(session: agent.Session, *frames: bytes) -> None:
    session._on_control(b"".join(frames))


def test_input_reaches_the_program_then_its_end(run: tuple[agent.Session, int]) -> None:
    session, program_stdin = run
    feed(session, agent.frame(agent.STDIN, b"hi\n"), agent.frame(agent.STDIN_EOF))
    assert os.read(program_stdin, 100) == b"hi\n"
    assert os.read(program_stdin, 100) == b""


def test_input_after_the_end_of_stdin_is_dropped(run: tuple[agent.Session, int]) -> None:
    session, program_stdin = run
    feed(session, agent.frame(agent.STDIN_EOF), FLOOD)
    assert session.pending_stdin == b""
    assert os.read(program_stdin, 100) == b""


def test_input_the_program_does_not_read_is_bounded(run: tuple[agent.Session, int]) -> None:
    session, _ = run
    feed(session, FLOOD)
    assert len(session.pending_stdin) <= agent.MAX_PENDING_STDIN


def test_input_after_the_program_closed_its_stdin_is_dropped() -> None:
    session, program_stdin = mid_run()
    os.close(program_stdin)
    feed(session, agent.frame(agent.STDIN, b"first"))
    assert session.stdin_w is None  # the pipe has no reader left: stdin ended
    feed(session, FLOOD)
    assert session.pending_stdin == b""
    close(session)
