"""C++ (g++): every .cpp file compiled into one binary; stdout line-buffered, so output is live."""

from runtimes.runtime import Runtime

RUNTIME = Runtime(
    language="cpp",
    aliases=("c++", "g++", "cxx"),
    entry="main.cpp",
    mode="exec",
    compile=(
        "sh",
        "-c",
        # The image precompiles <bits/stdc++.h> and <iostream> there, for these exact flags.
        "g++ -std=c++17 -O2 -pipe -Wall -I/opt/coderunner/pch -fuse-ld=gold -o main *.cpp",
    ),
    run=("stdbuf", "-oL", "./main"),
    pool_max=4,
)
