"""Backpressure: a WebSocket client that reads slowly, or not at all, while its program
floods output cannot grow the app's memory without bound; the execution goes on."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coderunner.redis_server import EmbeddedRedis
from tests.client import Client
from tests.processes import free_port, start, stop

OUTPUT_MIB = 24
FLOOD = (
    "import sys\nline = 'x' * 1023 + '\\n'\n"
    f"for _ in range({OUTPUT_MIB} * 1024): sys.stdout.write(line)\n"
)
SEND_TIMEOUT_S = 2
FLOOD_S = 8  # ample for the flood to end, and for the app to give up on a silent client


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, int]]:
    """An API process and a worker process on one Redis: (client, the API's pid)."""
    log = tmp_path_factory.mktemp("split") / "split.log"
    port = free_port()
    with EmbeddedRedis() as redis:
        common = {"redis_url": redis.url, "max_output_bytes": str(64 * 1024 * 1024)}
        api = start("api", log, port=str(port), ws_send_timeout_s=str(SEND_TIMEOUT_S), **common)
        worker = start(
            "worker",
            log,
            worker_languages="python",
            worker_metrics_port=str(free_port()),
            worker_id=f"split-{port}",
            **common,
        )
        client = Client(f"http://127.0.0.1:{port}")
        try:
            client.wait_ready(api)
            client.run(code="print('warm')")
            yield client, api.pid
        finally:
            assert stop(worker) == 0 and stop(api) == 0, f"see {log}"


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError(pid)


class RawSocket:
    """A WebSocket client by hand, with a small receive buffer, that reads only when told."""

    def __init__(self, client: Client, path: str) -> None:
        host, port = client.base.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, message: dict[str, Any]) -> None:
        payload, mask = json.dumps(message).encode(), os.urandom(4)
        n = len(payload)
        length = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(b"\x81" + length + mask + masked)

    def _need(self, n: int) -> bool:
        while len(self.buffer) < n:
            chunk = self.sock.recv(4096)
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def frame(self) -> tuple[int, bytes] | None:
        """(opcode, payload) of the next frame; None at the end of the connection."""
        if not self._need(2):
            return None
        opcode, n = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
        at = 2
        if n >= 126:
            size = 2 if n == 126 else 8
            if not self._need(2 + size):
                return None
            n, at = int.from_bytes(self.buffer[2 : 2 + size], "big"), 2 + size
        if not self._need(at + n):
            return None
        payload, self.buffer = self.buffer[at : at + n], self.buffer[at + n :]
        return opcode, payload

    def close(self) -> None:
        self.sock.close()


def _start_flood(client: Client) -> tuple[RawSocket, str]:
    raw = RawSocket(client, "/ws/run")
    raw.send({"type": "run", "language": "python", "code": FLOOD, "timeout_s": 30})
    first = raw.frame()
    assert first is not None
    accepted = json.loads(first[1])
    assert accepted["type"] == "accepted", accepted
    return raw, accepted["execution_id"]


def _result(client: Client, execution_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.request("GET", f"/api/v1/execution/{execution_id}").body
        if body["status"] not in ("queued", "preparing", "running"):
            return body
        time.sleep(0.5)
    raise TimeoutError(execution_id)


def test_a_slow_reader_gets_everything_in_bounded_memory(split: tuple[Client, int]) -> None:
    client, api_pid = split
    baseline = _rss_mib(api_pid)
    raw, _ = _start_flood(client)
    received, peak, ended = 0, baseline, None
    try:
        # The program floods while the client reads nothing (for less than the send
        # deadline), then reads through a small buffer: the app's live feed for it
        # overflows and it catches up from Redis.
        time.sleep(SEND_TIMEOUT_S / 2)
        while (frame := raw.frame()) is not None:
            peak = max(peak, _rss_mib(api_pid))
            if frame[0] != 1:
                continue
            message = json.loads(frame[1])
            if message["type"] == "stdout":
                received += len(message["data"])
            if message["type"] == "exit":
                ended = message
                break
    finally:
        raw.close()
    assert ended is not None and ended["status"] == "completed", ended
    assert received == OUTPUT_MIB * 1024 * 1024
    # It catches up from Redis a page at a time: the app never holds the whole output.
    assert peak - baseline < OUTPUT_MIB / 2, (baseline, peak)


def test_a_client_that_never_reads_is_dropped_and_the_run_goes_on(
    split: tuple[Client, int],
) -> None:
    client, api_pid = split
    baseline = _rss_mib(api_pid)
    raw, execution_id = _start_flood(client)
    try:
        # Nothing is read while the program floods and ends (measured before the result is
        # fetched: its 24 MiB of output pass through the app on their own).
        peak = baseline
        for _ in range(int(FLOOD_S / 0.05)):
            peak = max(peak, _rss_mib(api_pid))
            time.sleep(0.05)
        assert peak - baseline < OUTPUT_MIB / 2, (baseline, peak)
        result = _result(client, execution_id)
        assert result["status"] == "completed" and result["exit_code"] == 0
        frames = []
        while (frame := raw.frame()) is not None:  # what was in flight, then the end
            frames.append(frame)
    finally:
        raw.close()
    texts = [json.loads(payload) for opcode, payload in frames if opcode == 1]
    assert not any(t["type"] == "exit" for t in texts), "it was not dropped"
    assert sum(len(t.get("data", "")) for t in texts) < OUTPUT_MIB * 1024 * 1024 / 4
    closes = [payload for opcode, payload in frames if opcode == 8]
    if closes:  # the close frame, when the connection could still take it
        assert int.from_bytes(closes[0][:2], "big") == 1013
    assert client.run(code="print('still serving')")["stdout"] == "still serving\n"
