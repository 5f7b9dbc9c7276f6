"""The languages code-runner can run, and how each one is built and started."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Runtime:
    """One language: its image, its entry file and how the in-container agent starts it.

    `mode` tells the agent how to run the entry point: `python` runs it inside a fork
    of the agent's already-loaded interpreter (no interpreter start-up on the warm path).
    `weight` is what one run costs a worker's capacity (`CODERUNNER_WORKER_SLOTS`).
    """

    language: str
    version: str
    aliases: tuple[str, ...]
    dockerfile: str
    entry: str
    mode: str
    compiled: bool = False
    weight: int = 1

    def image(self, prefix: str) -> str:
        return f"{prefix}-{self.language}:{self.version}"


RUNTIMES: dict[str, Runtime] = {
    rt.language: rt
    for rt in (
        Runtime(
            language="python",
            version="3.11",
            aliases=("py", "python3"),
            dockerfile="python.Dockerfile",
            entry="main.py",
            mode="python",
        ),
    )
}

_BY_NAME = {name: rt for rt in RUNTIMES.values() for name in (rt.language, *rt.aliases)}


def lookup(name: str) -> Runtime | None:
    """The runtime called `name` (its language or an alias), or None."""
    return _BY_NAME.get(name.lower())
