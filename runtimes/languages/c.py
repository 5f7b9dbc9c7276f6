"""C (gcc): every .c file compiled into one binary; stdout line-buffered so output is live."""

from runtimes.runtime import Runtime

RUNTIME = Runtime(
    language="c",
    aliases=("gcc",),
    entry="main.c",
    mode="exec",
    compile=("sh", "-c", "gcc -std=gnu17 -O2 -pipe -Wall -fuse-ld=gold -o main *.c -lm"),
    run=("stdbuf", "-oL", "./main"),
    pool_max=4,
)
