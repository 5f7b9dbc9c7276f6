"""The agent buffers a program's input only while the program can still read it, and only so
much: a flood of STDIN frames must not grow PID 1 until the sandbox is OOM-killed."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from runtimes.agent.stdin import EOT, MAX_PENDING_STDIN, Stdin

FLOOD = b"x" * (16 * 1024 * 1024)


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):
            os.close(fd)


def test_input_before_the_program_exists_is_kept_then_delivered(pipe: tuple[int, int]) -> None:
    r, w = pipe
    stdin = Stdin()
    stdin.add(b"typed early\n")
    stdin.end()
    stdin.attach(w, tty=False)
    assert stdin.flush() is False
    assert os.read(r, 100) == b"typed early\n"
    assert os.read(r, 100) == b"", "end of stdin must close the program's stdin"


def test_input_after_its_end_is_dropped() -> None:
    stdin = Stdin()
    stdin.end()
    stdin.add(FLOOD)
    assert len(stdin.pending) == 0


def test_input_for_a_program_that_does_not_read_is_bounded(pipe: tuple[int, int]) -> None:
    _, w = pipe
    stdin = Stdin()
    stdin.attach(w, tty=False)
    stdin.add(FLOOD)
    assert stdin.flush() is True  # the pipe is full: wait for the program
    assert len(stdin.pending) <= MAX_PENDING_STDIN


def test_a_program_that_closed_its_stdin_ends_it(pipe: tuple[int, int]) -> None:
    r, w = pipe
    stdin = Stdin()
    stdin.attach(w, tty=False)
    os.close(r)
    stdin.add(b"nobody reads this")
    assert stdin.flush() is False
    assert stdin.closed and stdin.ended
    stdin.add(FLOOD)
    assert len(stdin.pending) == 0


def test_a_terminal_gets_end_of_transmission_and_stays_open(pipe: tuple[int, int]) -> None:
    r, w = pipe
    stdin = Stdin()
    stdin.attach(w, tty=True)
    stdin.add(b"hi\n")
    stdin.end()
    stdin.flush()
    assert os.read(r, 100) == b"hi\n" + EOT
    os.write(w, b"!")  # the descriptor is still open: the agent reads the terminal from it
