"""The core paths against a local three-node Redis Cluster: `coderunner dev` and a second
`coderunner api` on `redis+cluster://`, every script and transaction in one hash slot, the
languages' keys spread over the nodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client import Client
from tests.conftest import UNLIMITED
from tests.polling import until
from tests.processes import free_port, start, stop
from tests.redis_cluster import keys_per_node, redis_cluster

# python and go hash to slots on different nodes of three; the load reports to the third.
LANGUAGES = "python,go"
GO_HELLO = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello from go") }\n'


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, str, list[int]]]:
    """(a client of `coderunner dev` on the cluster, the cluster's URL, its nodes' ports)."""
    log = tmp_path_factory.mktemp("cluster") / "dev.log"
    with redis_cluster() as ports:
        url = f"redis+cluster://127.0.0.1:{ports[0]}"
        port = free_port()
        proc = start(
            "dev",
            log,
            redis_url=url,
            port=str(port),
            worker_languages=LANGUAGES,
            pool_min="1",
            worker_id=f"cluster-{port}",
            **UNLIMITED,
        )
        client = Client(f"http://127.0.0.1:{port}")
        try:
            client.wait_ready(proc)
            yield client, url, ports
        finally:
            code = stop(proc)
        assert code == 0, f"coderunner dev exited with {code}; see {log}"


def test_runs_end_and_the_keys_spread_over_the_nodes(
    cluster: tuple[Client, str, list[int]],
) -> None:
    client, _, ports = cluster
    hello = client.run(code="print('hello')")
    assert (hello["status"], hello["stdout"]) == ("completed", "hello\n")
    go = client.run(language="go", code=GO_HELLO)
    assert (go["status"], go["stdout"]) == ("completed", "hello from go\n")
    assert all(count > 0 for count in keys_per_node(ports))


def test_output_streams_live_and_a_late_watcher_replays_it(
    cluster: tuple[Client, str, list[int]],
) -> None:
    client, _, _ = cluster
    execution_id = client.submit(code="for i in range(300):\n    print(i)")
    live = client.watch(execution_id)
    lines = "".join(f"{i}\n" for i in range(300))
    assert live.text() == lines and live.exit["status"] == "completed"
    late = client.watch(execution_id)
    assert late.text() == lines


def test_concurrent_runs_of_both_languages_all_end(cluster: tuple[Client, str, list[int]]) -> None:
    client, _, _ = cluster
    cases = {f"py{i}": {"code": f"print({i} * 2)"} for i in range(6)}
    cases |= {f"go{i}": {"language": "go", "code": GO_HELLO} for i in range(2)}
    results = client.run_all(cases)
    assert {name: r["status"] for name, r in results.items()} == dict.fromkeys(cases, "completed")
    assert [results[f"py{i}"]["stdout"] for i in range(6)] == [f"{i * 2}\n" for i in range(6)]


def test_stdin_and_abort(cluster: tuple[Client, str, list[int]]) -> None:
    client, _, _ = cluster
    echoed = client.run(code="print(input()[::-1])", stdin="cluster\n")
    assert echoed["stdout"] == "retsulc\n"
    execution_id = client.submit(code="while True:\n    pass", timeout_s=20)
    path = f"/api/v1/execution/{execution_id}"
    assert until(lambda: client.request("GET", path).body["status"] == "running", 20)
    assert client.request("DELETE", path).status == 200
    assert client.request("GET", path).body["status"] == "aborted"


def test_a_second_api_process_holds_the_users_cap(
    cluster: tuple[Client, str, list[int]], tmp_path: Path
) -> None:
    """The cap's slots live in the user's own slot of the cluster, apart from the records."""
    _, url, _ = cluster
    port = free_port()
    limits = {**UNLIMITED, "max_concurrent_per_user": "1"}
    api = start("api", tmp_path / "api.log", redis_url=url, port=str(port), **limits)
    client = Client(f"http://127.0.0.1:{port}")
    try:
        client.wait_ready(api)
        first = client.submit(code="import time; time.sleep(20)", timeout_s=30)
        refused = client.request("POST", "/api/v1/execute", {"language": "python", "code": ""})
        assert refused.status == 429, refused
        assert client.request("DELETE", f"/api/v1/execution/{first}").status == 200
        assert client.run(code="print('next')")["stdout"] == "next\n"
    finally:
        stop(api)


def test_ids_shaped_unlike_ours_name_no_execution(cluster: tuple[Client, str, list[int]]) -> None:
    """Read as keys, they would mix slots (`-x`: an empty hash tag) and fail on a cluster."""
    client, _, _ = cluster
    for crafted in ("-abc", "x}y", "python-0123", "nope"):
        assert client.request("GET", f"/api/v1/execution/{crafted}").status == 404
        assert client.request("DELETE", f"/api/v1/execution/{crafted}").status == 404
    assert client.watch("-abc").close_code == 4004
