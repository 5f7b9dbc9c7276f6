"""The program's input: buffered until it can be written, bounded, dropped after its end."""

from __future__ import annotations

import contextlib
import os

# Input buffered for a program that does not read it yet. The worker caps stdin per execution
# (1 MiB by default); beyond this the agent drops input rather than grow until the OOM killer.
MAX_PENDING_STDIN = 4 * 1024 * 1024
EOT = b"\x04"  # what a terminal sends for end of input (Ctrl-D)


class Stdin:
    """Input arrives before the program exists (with the job, during a compile step) and while
    it runs; it is written as the program reads, and ends once, with EOF or the program."""

    def __init__(self) -> None:
        self.pending = bytearray()
        self.fd: int | None = None
        self.tty = False
        self.ended = False  # no more input will be taken
        self.closed = False  # the program's stdin is closed (or the terminal got EOT)
        self._line_open = False  # the last input written did not end a line

    def attach(self, fd: int, tty: bool) -> None:
        os.set_blocking(fd, False)
        self.fd, self.tty = fd, tty

    def add(self, data: bytes) -> None:
        """Input after the end of stdin has no reader and is dropped."""
        if not self.ended:
            self.pending += data[: MAX_PENDING_STDIN - len(self.pending)]

    def end(self) -> None:
        self.ended = True

    def flush(self) -> bool:
        """Write what the program can take now; True while more waits for the fd."""
        if self.fd is None or self.closed:
            return False
        try:
            while self.pending:
                written = os.write(self.fd, self.pending)
                self._line_open = self.pending[written - 1 : written] != b"\n"
                del self.pending[:written]
        except BlockingIOError:
            return True
        except OSError:  # no reader left: the program closed its stdin or ended
            self.pending.clear()
            self.ended = True
        if self.ended:
            self._finish()
        return False

    def close(self) -> None:
        """The program has ended: nothing more will be written."""
        self.pending.clear()
        self.ended = True
        self._finish()

    def _finish(self) -> None:
        if self.closed or self.fd is None:
            return
        self.closed = True
        if self.tty:  # the master stays open: the agent still reads the terminal from it
            with contextlib.suppress(OSError):  # a first EOT only ends a partial line
                os.write(self.fd, EOT * (2 if self._line_open else 1))
        else:
            with contextlib.suppress(OSError):
                os.close(self.fd)
