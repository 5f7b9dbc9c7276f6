"""Many watchers, slow watchers, too many watchers: each one that is let in gets every frame
in order, and the service keeps serving everyone else."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from coderunner.redis_server import EmbeddedRedis
from runtimes.settings import Settings
from tests.app.serving import serving
from tests.client import Client, Watched

WATCHERS = 300
LINES = 300
TICKER = f"""import time
for i in range({LINES}):
    print('line', i, flush=True)
    time.sleep(0.005)"""


def test_three_hundred_watchers_get_everything_while_others_submit(server: Client) -> None:
    execution_id = server.submit(code=TICKER)
    others: list[str] = []
    stop = threading.Event()

    def submit_meanwhile() -> None:
        while not stop.is_set():
            others.append(server.run(code="print('other')")["stdout"])

    other = threading.Thread(target=submit_meanwhile)
    other.start()
    try:
        with ThreadPoolExecutor(WATCHERS) as pool:
            watched: list[Watched] = list(
                pool.map(lambda _: server.watch(execution_id, timeout=30), range(WATCHERS))
            )
    finally:
        stop.set()
        other.join(60)
    assert sorted({w.close_code or 0 for w in watched}) == [1000]
    expected = "".join(f"line {i}\n" for i in range(LINES))
    for w in watched:
        assert w.text() == expected
        assert [f["seq"] for f in w.output] == list(range(len(w.output)))
        assert w.exit["status"] == "completed"
    assert others and all(out == "other\n" for out in others)


def test_a_watcher_that_stops_reading_still_gets_everything_in_order(server: Client) -> None:
    code = "import sys\nfor i in range(20000):\n    sys.stdout.write(f'{i:08d}' + 'x' * 40 + '\\n')"
    execution_id = server.submit(code=code)
    url = f"{server.ws_base}/ws/execution/{execution_id}"
    with connect(url, open_timeout=10, max_queue=1) as ws:
        time.sleep(4)  # the program floods while this client reads nothing
        frames = [json.loads(raw) for raw in ws]
    watched = Watched(frames, None)
    assert watched.text() == "".join(f"{i:08d}" + "x" * 40 + "\n" for i in range(20000))
    assert [f["seq"] for f in watched.output] == list(range(len(watched.output)))
    assert watched.exit["status"] == "completed"


@pytest.fixture
def capped() -> Iterator[Client]:
    """The app with small socket caps, on a Redis of its own with no worker: every
    execution stays queued, so its watchers stay open."""
    settings = Settings(max_watchers_per_execution=2, max_sockets_per_client=3)
    with EmbeddedRedis() as redis, serving(redis.url, settings) as api:
        yield api


def _refused(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def _admitted(stack: ExitStack, api: Client, execution_id: str) -> ClientConnection:
    ws = stack.enter_context(api.socket(execution_id))
    assert json.loads(ws.recv(timeout=10)) == {"type": "status", "status": "queued"}
    return ws


def test_sockets_past_a_cap_are_closed_1008_with_the_reason(capped: Client) -> None:
    first, second = capped.submit(code="1"), capped.submit(code="2")
    with ExitStack() as stack:
        a1 = _admitted(stack, capped, first)
        _admitted(stack, capped, first)
        with capped.socket(first) as a3:
            assert _refused(a3) == (1008, "too many sockets: at most 2 watch one execution")
        _admitted(stack, capped, second)
        with capped.socket(second) as b2:
            assert _refused(b2) == (1008, "too many sockets: at most 3 per client")
        a1.close()
        time.sleep(0.3)  # the server has seen the close and freed its place
        _admitted(stack, capped, second)
