"""Python 3: run in a fork of the agent's already loaded interpreter."""

from runtimes.runtime import Runtime

RUNTIME = Runtime(
    language="python",
    aliases=("py", "python3"),
    entry="main.py",
    mode="python",
    env={"PYTHONDONTWRITEBYTECODE": "1"},
    pool_max=8,
)
