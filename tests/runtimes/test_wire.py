"""One codec for jobs, results and events; events are the WebSocket frames verbatim."""

from __future__ import annotations

import orjson

from runtimes import wire
from runtimes.lifecycle import Status


def test_job_round_trip() -> None:
    job = wire.Job(
        "id1",
        "python",
        (wire.SourceFile("main.py", "print(1)"),),
        "in",
        ("a",),
        5.0,
        128,
        True,
        1.5,
    )
    assert wire.decode_job(wire.encode(job)) == job


def test_result_round_trip() -> None:
    result = wire.Result("id1", "python", Status.TIMED_OUT, None, "SIGKILL", "o", "e", True, "warm",
                         None, wire.Timings(1.0, 2.0, None, 3.0, 6.0))  # fmt: skip
    assert wire.decode_result(wire.encode(result)) == result


def test_events_are_contract_frames() -> None:
    assert orjson.loads(wire.encode(wire.StatusEvent(Status.QUEUED))) == {
        "type": "status",
        "status": "queued",
    }
    out = wire.OutputEvent("stdout", "hi\n", 0)
    assert orjson.loads(wire.encode(out)) == {"type": "stdout", "data": "hi\n", "seq": 0}
    result = wire.Result("id1", "python", Status.COMPLETED, 0, start="warm")
    exit_frame = orjson.loads(wire.encode(wire.ExitEvent.of(result)))
    assert exit_frame["type"] == "exit" and exit_frame["status"] == "completed"
    assert set(exit_frame) >= {"exit_code", "signal", "start", "timings"}
    for event in (wire.StatusEvent(Status.RUNNING), out, wire.ExitEvent.of(result)):
        assert wire.decode_event(wire.encode(event)) == event


def test_is_exit_tells_the_exit_event_without_decoding() -> None:
    result = wire.Result("e", "python", Status.COMPLETED, exit_code=0)
    assert wire.is_exit(wire.encode(wire.ExitEvent.of(result)))
    assert not wire.is_exit(wire.encode(wire.StatusEvent(Status.RUNNING)))
    tricky = wire.OutputEvent("stdout", '"type":"exit"}', 0)
    assert not wire.is_exit(wire.encode(tricky))
