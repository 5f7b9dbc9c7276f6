"""The soak, cut to half a minute at a low rate: its checks pass on a short run too."""

from __future__ import annotations

from loadtests.soak import soak


def test_short_soak_passes() -> None:
    # Its own `coderunner dev` and Redis: its keys, memory and containers are its alone.
    lost, reasons = soak(minutes=0.5, rate=2.0)
    assert lost == 0
    assert reasons == []
