"""Rust: rustc on the entry file (its `mod` files are found beside it)."""

from runtimes.runtime import ENTRY, Runtime

RUNTIME = Runtime(
    language="rust",
    aliases=("rs",),
    entry="main.rs",
    mode="exec",
    compile=(
        "rustc",
        "--edition",
        "2021",
        "-C",
        "opt-level=2",
        "-C",
        "codegen-units=1",
        "-C",
        "prefer-dynamic",
        "-C",
        "link-arg=-fuse-ld=gold",
        "-o",
        "main",
        ENTRY,
    ),
    run=("./main",),
    weight=2,
    pool_max=3,
)
