"""Waiting in tests for what happens in other processes."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(condition: Callable[[], bool], limit_s: float, every_s: float = 0.1) -> bool:
    """Poll `condition` until it holds (True) or `limit_s` passes (False)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return False
