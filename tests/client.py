"""A small synchronous client of the contract, for tests and benchmarks."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect


class Headers(dict[str, str]):
    """Response headers, looked up case-insensitively as HTTP names are."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__({k.lower(): v for k, v in dict(items).items()})

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)


@dataclass
class Reply:
    status: int
    body: Any
    headers: Headers = field(default_factory=Headers)


@dataclass
class Watched:
    """Everything one WebSocket received, and how it closed."""

    frames: list[dict[str, Any]]
    close_code: int | None

    @property
    def output(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] in ("stdout", "stderr")]

    def text(self, stream: str = "stdout") -> str:
        return "".join(f["data"] for f in self.frames if f["type"] == stream)

    @property
    def exit(self) -> dict[str, Any]:
        assert self.frames[-1]["type"] == "exit", self.frames[-1]
        return self.frames[-1]


class Client:
    def __init__(self, base: str) -> None:
        self.base = base
        self.ws_base = base.replace("http://", "ws://", 1)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """`headers` are added after the JSON Content-Type, so they may replace it."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return Reply(resp.status, _decode(resp.read(), resp.headers), Headers(resp.headers))
        except urllib.error.HTTPError as err:
            return Reply(err.code, _decode(err.read(), err.headers), Headers(err.headers))

    def submit(self, **body: Any) -> str:
        reply = self.request("POST", "/api/v1/execute", {"language": "python", **body})
        assert reply.status == 202, reply
        execution_id: str = reply.body["execution_id"]
        return execution_id

    def run(self, **body: Any) -> dict[str, Any]:
        """Submit with ?wait=true and return the final result."""
        reply = self.request("POST", "/api/v1/execute?wait=true", {"language": "python", **body})
        assert reply.status == 200, reply
        result: dict[str, Any] = reply.body
        return result

    def socket(self, execution_id: str, headers: dict[str, str] | None = None) -> ClientConnection:
        url = f"{self.ws_base}/ws/execution/{execution_id}"
        return connect(url, additional_headers=headers, open_timeout=10)

    def watch(
        self, execution_id: str, timeout: float = 60, headers: dict[str, str] | None = None
    ) -> Watched:
        """Read a WebSocket from connect to close."""
        frames: list[dict[str, Any]] = []
        with self.socket(execution_id, headers) as ws:
            try:
                while True:
                    frames.append(json.loads(ws.recv(timeout=timeout)))
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
        return Watched(frames, code)

    def run_all(self, cases: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Submit every case at once, watch them all to the end; each one's final result."""
        ids = {name: self.submit(**body) for name, body in cases.items()}
        with ThreadPoolExecutor(len(ids)) as pool:
            list(pool.map(self.watch, ids.values()))
        return {name: self.request("GET", f"/api/v1/execution/{i}").body for name, i in ids.items()}

    def wait_ready(self, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited early with {proc.returncode}")
            try:
                if self.request("GET", "/readyz").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("server not ready in time")


def _decode(raw: bytes, headers: Any) -> Any:
    if "json" in headers.get("Content-Type", ""):
        return json.loads(raw)
    return raw.decode()
