"""What a language is to code-runner: its image, how its container warms, how a job runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

Mode = Literal["python", "exec", "launcher"]
ENTRY = "{entry}"  # in a compile or run command: the entry file's name


@dataclass(frozen=True)
class Runtime:
    """One language, as data; `runtimes/languages/<language>.py` defines one each.

    `mode` is how the in-container agent runs a job: `python` forks its own, already
    loaded interpreter; `exec` runs `run` (after `compile`, when there is one) as a new
    process; `launcher` hands the job to `launcher`, a process started while the container
    warmed that keeps the language's runtime loaded (and may compile in it, `compiles`).
    `weight` is what one run costs a worker's capacity (`CODERUNNER_WORKER_SLOTS`) and
    `pool_max` the default ceiling of its warm pool, both sized for a small machine. The
    version is not here: it is read from the image when the image is built.
    """

    language: str
    aliases: tuple[str, ...]
    entry: str
    mode: Mode
    run: tuple[str, ...] = ()
    compile: tuple[str, ...] = ()
    launcher: tuple[str, ...] = ()
    compiles: bool = False
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    weight: int = 1
    pool_max: int = 4

    @property
    def compiled(self) -> bool:
        return bool(self.compile) or self.compiles

    @property
    def dockerfile(self) -> str:
        return f"{self.language}.Dockerfile"

    def image(self, prefix: str) -> str:
        return f"{prefix}-{self.language}:latest"

    def agent_command(self) -> list[str]:
        """The container's command: the agent's arguments."""
        return [self.mode, "--", *self.launcher] if self.launcher else [self.mode]

    def compile_command(self, entry: str) -> list[str]:
        return [part.replace(ENTRY, entry) for part in self.compile]

    def run_command(self, entry: str) -> list[str]:
        return [part.replace(ENTRY, entry) for part in self.run]
