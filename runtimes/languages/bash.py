"""Bash: a new bash process per run (it starts in about a millisecond)."""

from runtimes.runtime import ENTRY, Runtime

RUNTIME = Runtime(
    language="bash",
    aliases=("sh", "shell"),
    entry="main.sh",
    mode="exec",
    run=("bash", ENTRY),
    pool_max=6,
)
