"""A private `redis-server` on a unix socket, for `coderunner dev` and the test session."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from runtimes.settings import Settings

START_TIMEOUT_S = 10.0
DEFAULT_MAXMEMORY = Settings.redis_maxmemory


class RedisServerError(RuntimeError):
    """The private redis-server could not be started."""


class EmbeddedRedis:
    """Starts on enter, stops on exit; its URL is a unix socket, so no port can clash.

    Its memory is capped at `maxmemory` (redis-server's units: "1gb", "64mb") with the
    `noeviction` policy: when full, writes fail with an OOM error (the app answers 503)
    instead of Redis silently evicting keys, which could drop queued jobs or results.
    """

    def __init__(self, maxmemory: str = DEFAULT_MAXMEMORY) -> None:
        self.maxmemory = maxmemory
        self._dir = Path(tempfile.mkdtemp(prefix="coderunner-redis-"))
        self.socket = self._dir / "redis.sock"
        self.url = f"unix://{self.socket}"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def start(self) -> None:
        """Start (or start again, on the same socket and data: the queue survives)."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError(
                "redis-server is not installed: run `apt-get install -y redis-server`"
                " or set CODERUNNER_REDIS_URL to a Redis you run"
            )
        self.socket.unlink(missing_ok=True)
        self._proc = subprocess.Popen(
            [binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
             "--dir", str(self._dir), "--loglevel", "warning",
             "--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.socket.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RedisServerError(f"redis-server did not start (socket {self.socket})")
            time.sleep(0.02)

    def shutdown(self) -> None:
        """Stop the server, keeping its data for a later `start`."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def stop(self) -> None:
        """Stop the server and delete its data."""
        self.shutdown()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
