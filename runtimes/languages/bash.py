"""Bash: a new bash process per run (it starts in about a millisecond)."""

from runtimes.runtime import Runtime

RUNTIME = Runtime(
    language="bash",
    aliases=("sh", "shell"),
    entry="main.sh",
    mode="exec",
    run=("bash", "main.sh"),
    pool_max=6,
)
