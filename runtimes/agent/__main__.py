"""`python3 -m agent MODE [-- LAUNCHER...]`: warm up for MODE, say READY, run one job.

MODE is `python` (preload the interpreter, fork it per job), `exec` (run the job's
commands) or `launcher` (start the given launcher now, hand it the job later).
"""

from __future__ import annotations

import importlib
import sys

from . import start
from .protocol import READY
from .session import Launcher, Session

# Imported before the container reports ready, so a program's first imports cost nothing.
PRELOAD = (
    "collections", "datetime", "functools", "heapq", "itertools", "math", "random", "re",
    "string", "typing", "dataclasses", "bisect", "decimal", "fractions", "statistics",
)  # fmt: skip


def main(argv: list[str]) -> None:
    mode, launcher_argv = argv[0], argv[argv.index("--") + 1 :] if "--" in argv else []
    start.set_dumpable(0)
    start.ignore_signals()
    session = Session(control=0, out=1)
    warm: Launcher | None = None
    if mode == "python":
        for name in PRELOAD:
            importlib.import_module(name)
    elif mode == "launcher":
        warm = session.start_launcher(launcher_argv, start.pipes(ordered=True))
    session.send(READY)
    job = session.next_job()
    job.setdefault("launcher", launcher_argv)
    session.run(job, mode, warm)


if __name__ == "__main__":
    main(sys.argv[1:])
