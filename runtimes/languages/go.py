"""Go: `package main` over any number of files, compiled and linked without the go command."""

from runtimes.runtime import Runtime

RUNTIME = Runtime(
    language="go",
    aliases=("golang",),
    entry="main.go",
    mode="exec",
    compile=("sh", "/opt/coderunner/go/build.sh"),
    run=("./main",),
    weight=2,
    pool_max=3,
)
