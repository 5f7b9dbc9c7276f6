"""The languages code-runner can run: every module of `runtimes/languages/` defines one.

Adding a language is one module there (a `RUNTIME`) and one Dockerfile in `dockerfiles/`.
"""

from __future__ import annotations

import importlib
import pkgutil

from runtimes import languages
from runtimes.runtime import Runtime


def _discover() -> dict[str, Runtime]:
    found = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(languages.__path__)):
        runtime = importlib.import_module(f"{languages.__name__}.{module}").RUNTIME
        assert isinstance(runtime, Runtime) and runtime.language == module, module
        found[runtime.language] = runtime
    return found


RUNTIMES: dict[str, Runtime] = _discover()

_BY_NAME = {name: rt for rt in RUNTIMES.values() for name in (rt.language, *rt.aliases)}


def lookup(name: str) -> Runtime | None:
    """The runtime called `name` (its language or an alias), or None."""
    return _BY_NAME.get(name.lower())
