"""Go: `package main` over any number of files, built with the build cache in the workspace."""

from runtimes.runtime import Runtime

RUNTIME = Runtime(
    language="go",
    aliases=("golang",),
    entry="main.go",
    mode="exec",
    compile=("go", "build", "-o", "main", "."),
    run=("./main",),
    env={"GO111MODULE": "off", "GOCACHE": "/workspace/.cache/go", "GOPATH": "/workspace/.go"},
    weight=2,
    pool_max=3,
)
