"""What the Docker engine adapter raises: one family, so callers handle engine trouble in one place.

Whatever went wrong underneath (an error answer, a refused or reset connection, a cut-off or
malformed body, no answer in time), the adapter raises one of these and nothing else.
"""

from __future__ import annotations


class EngineError(RuntimeError):
    """The Docker engine failed, could not be reached, or answered something unusable."""


class NotFound(EngineError):
    """The engine answered 404: no such container or image."""


class EngineTimeout(EngineError):
    """The engine did not answer within the call's deadline: a hung dockerd counts as a
    failing one (the pool's breaker trips) instead of holding its caller forever."""
