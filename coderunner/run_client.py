"""`coderunner run`: run local files on a code-runner server over `/ws/run`, as if locally.

Output arrives live (stdout to stdout, stderr to stderr), this process's stdin reaches the
program, and the exit status is the program's, or one of `coderunner.exit_codes`. It needs
only the wire contract: it never imports `app/` or `poolmgr/`.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import json
import os
import re
import signal
import sys
import termios
import tty
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, BinaryIO, NoReturn

import anyio
from anyio.abc import TaskGroup
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from coderunner import exit_codes
from coderunner.exit_codes import Outcome
from runtimes.registry import RUNTIMES, lookup

DEFAULT_SERVER = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S, DEFAULT_MEMORY_MB = 10.0, 256  # the server's defaults, for the messages
READ_SIZE = 64 * 1024
# A file name the server takes (docs/api.md): plain relative paths, no '..', no leading '.'.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*")
_MORE_SUFFIXES = {".cc": "cpp", ".cxx": "cpp", ".c++": "cpp", ".bash": "bash"}
SUFFIXES = {
    **{suffix: lang for suffix, lang in _MORE_SUFFIXES.items() if lang in RUNTIMES},
    **{PurePath(rt.entry).suffix.lower(): rt.language for rt in RUNTIMES.values()},
}
_QUIET_ERRORS = {"stdin_closed", "no_run"}  # stdin sent as the program or the run ended


class CommandLineError(Exception):
    """What the command line asked for cannot be sent; `code` is the exit status."""

    def __init__(self, message: str, code: int = exit_codes.USAGE) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Request:
    """One `coderunner run`: where to, the run frame's fields, and what to do with stdin."""

    url: str
    token: str | None
    body: dict[str, Any]
    forward_stdin: bool  # stream this process's stdin as stdin frames (the run is interactive)
    raw_terminal: bool  # --tty on a terminal: keystrokes go to the program as typed


def language_for(path: str, override: str | None) -> str:
    """The language to run `path` as: `-l` (a language or an alias), else its extension."""
    if override is not None:
        runtime = lookup(override)
        if runtime is None:
            raise CommandLineError(f"unknown language {override!r}; one of: {_languages()}")
        return runtime.language
    language = SUFFIXES.get(PurePath(path).suffix.lower())
    if language is None:
        raise CommandLineError(
            f"cannot tell the language of {path!r} from its extension"
            f" ({' '.join(sorted(SUFFIXES))}); give -l LANG, one of: {_languages()}"
        )
    return language


def _languages() -> str:
    return ", ".join(sorted(RUNTIMES))


def file_names(paths: Sequence[str]) -> list[str]:
    """The name each file is sent under: its path relative to the first file's directory when
    it lies inside it (so `pkg/util.py` stays a package), else its base name."""
    root = os.path.dirname(os.path.abspath(paths[0]))
    names: list[str] = []
    for path in paths:
        name = os.path.relpath(os.path.abspath(path), root)
        if not _NAME.fullmatch(name):
            name = os.path.basename(path)
        if not _NAME.fullmatch(name):
            raise CommandLineError(
                f"{path!r}: the server takes file names of letters, digits, '.', '_', '-'"
                " (not starting with '.')"
            )
        if name in names:
            raise CommandLineError(f"two files would both be sent as {name!r}")
        names.append(name)
    return names


def _read_text(path: str | None) -> str:
    """A file's content (this process's stdin for None or '-'), as text."""
    try:
        if path is None or path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as exc:
        raise CommandLineError(
            f"cannot read {path!r}: {exc.strerror}", exit_codes.NO_INPUT
        ) from None
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise CommandLineError(f"{path or 'stdin'!r} is not UTF-8 text") from None


def socket_url(server: str) -> str:
    """`/ws/run` on `server`, an http(s):// or ws(s):// URL (a path prefix is kept)."""
    parts = urllib.parse.urlsplit(server)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise CommandLineError(f"--server must be an http(s):// or ws(s):// URL, got {server!r}")
    return urllib.parse.urlunsplit(
        (scheme, parts.netloc, parts.path.rstrip("/") + "/ws/run", "", "")
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 64, not argparse's 2
        self.print_usage(sys.stderr)
        self.exit(exit_codes.USAGE, f"{self.prog}: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="coderunner run",
        usage="%(prog)s FILE... [-l LANG] [--stdin FILE|-] [--server URL] [--token KEY]"
        " [--tty] [--timeout S] [--memory MB] [-- ARG...]",
        description="Run FILEs (the first is the entry point) on a code-runner server.",
        epilog=exit_codes.TABLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="the first is the entry point")
    parser.add_argument("-l", "--language", metavar="LANG", help="default: from the extension")
    parser.add_argument("--stdin", metavar="FILE|-", help="the program's whole stdin, up front")
    parser.add_argument("--server", metavar="URL", help=f"$CODERUNNER_SERVER, {DEFAULT_SERVER}")
    parser.add_argument("--token", metavar="KEY", help="API key; default $CODERUNNER_TOKEN")
    parser.add_argument("--tty", action="store_true", help="run under a pseudo-terminal")
    parser.add_argument("--timeout", type=float, metavar="S", help="timeout_s, 1 to 30")
    parser.add_argument("--memory", type=int, metavar="MB", help="memory_mb, 64 to 512")
    return parser


def parse(argv: Sequence[str], env: Mapping[str, str], stdin_is_terminal: bool) -> Request:
    """The request a command line asks for (files read); arguments after `--` go to the program."""
    cut = argv.index("--") if "--" in argv else len(argv)
    args = _parser().parse_args(argv[:cut])
    language = language_for(args.files[0], args.language)
    names = file_names(args.files)
    body: dict[str, Any] = {
        "language": language,
        "files": [
            {"name": n, "content": _read_text(p)} for n, p in zip(names, args.files, strict=True)
        ],
        "args": list(argv[cut + 1 :]),
        "tty": args.tty,
        "interactive": args.stdin is None,
    }
    if args.stdin is not None:
        body["stdin"] = _read_text(args.stdin)
    if args.timeout is not None:
        body["timeout_s"] = args.timeout
    if args.memory is not None:
        body["memory_mb"] = args.memory
    server = args.server or env.get("CODERUNNER_SERVER") or DEFAULT_SERVER
    return Request(
        url=socket_url(server),
        token=args.token or env.get("CODERUNNER_TOKEN") or None,
        body=body,
        forward_stdin=args.stdin is None,
        raw_terminal=args.tty and args.stdin is None and stdin_is_terminal,
    )


class _Session:
    """One run over one socket: frames to this process's stdout/stderr, its stdin to the run."""

    def __init__(self, request: Request, stdout: BinaryIO, stderr: BinaryIO) -> None:
        self.request = request
        self.streams = {"stdout": stdout, "stderr": stderr}
        self.ws: ClientConnection | None = None
        self.execution_id: str | None = None
        self.interrupted = False
        self.stdin_open = request.forward_stdin
        self.output_closed = False  # a reader of our output went away
        self.errors_said: set[object] = set()

    async def run(self, tg: TaskGroup) -> Outcome:
        headers = {"Authorization": f"Bearer {self.request.token}"} if self.request.token else {}
        try:
            self.ws = await connect(self.request.url, additional_headers=headers)
        except InvalidStatus as exc:
            return exit_codes.from_http_status(exc.response.status_code)
        except (OSError, TimeoutError, WebSocketException) as exc:
            return Outcome(exit_codes.UNAVAILABLE, f"cannot reach {self.request.url}: {exc}")
        async with self.ws:
            return await self._frames(self.ws, tg)

    async def _frames(self, ws: ClientConnection, tg: TaskGroup) -> Outcome:
        with contextlib.suppress(ConnectionClosed):  # e.g. closed 4401 as soon as accepted
            await ws.send(json.dumps({"type": "run", **self.request.body}))
            async for raw in ws:
                outcome = await self._on_frame(json.loads(raw), tg)
                if outcome is not None:
                    return outcome
        return exit_codes.from_close(ws.close_code, ws.close_reason or "")

    async def _on_frame(self, frame: dict[str, Any], tg: TaskGroup) -> Outcome | None:
        kind, theirs = frame.get("type"), frame.get("execution_id")
        if self.execution_id and theirs and theirs != self.execution_id:
            return None  # not this run's
        if kind == "accepted":
            self.execution_id = frame.get("execution_id")
            if self.interrupted:
                await self._send({"type": "kill"})
            elif self.stdin_open:
                tg.start_soon(self._forward_stdin)
        elif kind in ("stdout", "stderr"):
            await self._write(self.streams[kind], frame.get("data", ""))
        elif kind == "exit":
            if self.output_closed:
                return Outcome(128 + signal.SIGPIPE)
            body = self.request.body
            timeout_s = body.get("timeout_s", DEFAULT_TIMEOUT_S)
            return exit_codes.from_exit(frame, timeout_s, body.get("memory_mb", DEFAULT_MEMORY_MB))
        elif kind == "error":
            return await self._on_error(frame)
        return None

    async def _on_error(self, frame: dict[str, Any]) -> Outcome | None:
        """Before `accepted`, an error frame refuses the run; after, it refuses one of our
        stdin frames and the run goes on."""
        if self.execution_id is None:
            return exit_codes.from_error(frame)
        code = frame.get("code")
        if code in _QUIET_ERRORS or code in self.errors_said:
            return None  # stdin_limit comes once per frame sent before the first one came back
        self.errors_said.add(code)
        say(f"{code}: {frame.get('message')}")
        if self.stdin_open:  # e.g. stdin_limit: later input would be refused too
            self.stdin_open = False
            await self._send({"type": "stdin", "eof": True})
        return None

    async def _write(self, stream: BinaryIO, data: str) -> None:
        if self.output_closed:
            return
        try:
            stream.write(data.encode("utf-8", "replace"))
            stream.flush()
        except BrokenPipeError:  # the reader went away (`| head`): end the run, as SIGPIPE would
            self.output_closed = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
            await self._send({"type": "kill"})  # then wait for the exit, so the kill lands

    async def _forward_stdin(self) -> None:
        """This process's stdin as stdin frames, as it is read (a line at a time from a
        terminal, each keystroke in raw mode), then end of input."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while self.stdin_open:
            chunk = await _read_stdin()
            text = decoder.decode(chunk, final=not chunk)
            if text and self.stdin_open:
                await self._send({"type": "stdin", "data": text})
            if not chunk and self.stdin_open:
                self.stdin_open = False
                await self._send({"type": "stdin", "eof": True})

    async def _send(self, frame: dict[str, Any]) -> None:
        """Send if still connected; a lost connection is the receiving side's to report."""
        if self.ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(json.dumps(frame))

    async def on_signals(self, scope: anyio.CancelScope) -> None:
        """The first Ctrl-C (or SIGTERM) kills the run; the next one quits at once."""
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                if self.interrupted or self.ws is None:
                    scope.cancel()
                    return
                self.interrupted = True
                if self.execution_id is not None:  # else once accepted
                    await self._send({"type": "kill"})


async def _read_stdin() -> bytes:
    """The next chunk of stdin, b"" at its end. Regular files and /dev/null cannot be waited
    on (they are always readable), so waiting is only tried."""
    with contextlib.suppress(OSError):
        await anyio.wait_readable(0)
    try:
        return os.read(0, READ_SIZE)
    except OSError:  # stdin closed, or not readable: no input
        return b""


async def run(request: Request, stdout: BinaryIO, stderr: BinaryIO) -> Outcome:
    """Run `request` to its end; a second Ctrl-C ends it at once (130, the run killed)."""
    session = _Session(request, stdout, stderr)
    outcome = Outcome(exit_codes.ABORTED, "interrupted")
    async with anyio.create_task_group() as tg:
        tg.start_soon(session.on_signals, tg.cancel_scope)
        outcome = await session.run(tg)
        tg.cancel_scope.cancel()
    return outcome


@contextlib.contextmanager
def _raw_terminal(on: bool) -> Iterator[None]:
    """Stdin's terminal in raw mode while inside (restored on any exit), when `on`."""
    if not on:
        yield
        return
    saved = termios.tcgetattr(0)
    tty.setraw(0)
    try:
        yield
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


def say(line: str) -> None:
    """One line on stderr, from coderunner itself rather than the program."""
    sys.stderr.write(f"coderunner: {line}\n")
    sys.stderr.flush()


def main(argv: Sequence[str]) -> int:
    """`coderunner run ARGV...`; the exit status."""
    try:
        outcome = _main(argv)
    except KeyboardInterrupt:  # before the run's signal handlers are in place
        outcome = Outcome(exit_codes.ABORTED, "interrupted")
    if outcome.message:
        say(outcome.message)
    return outcome.code


def _main(argv: Sequence[str]) -> Outcome:
    try:
        request = parse(argv, os.environ, os.isatty(0))
    except CommandLineError as exc:
        return Outcome(exc.code, str(exc))
    with _raw_terminal(request.raw_terminal):
        return anyio.run(run, request, sys.stdout.buffer, sys.stderr.buffer)
