# C++ runtime: Debian's g++ plus the python3 the code-runner agent (PID 1, stdlib only)
# runs on, and precompiled <iostream> and <bits/stdc++.h> for the flags the agent uses.
# The builder adds the agent to the context and the image.
# BASE is a local image bootstrapped by `coderunner images build` (no registry needed);
# with a registry, any Debian-based image works: --build-arg BASE=debian:bookworm-slim
ARG BASE=coderunner-base:bookworm
FROM ${BASE}
# python3, not python3-minimal: python3-minimal has no json (nor shutil, dataclasses, pty,
# resource), and python3 also byte-compiles the stdlib, which a read-only root cannot do later.
# /workspace is 0700: the sandbox's tmpfs there takes its mode from this directory.
# coreutils has stdbuf (the binaries run under `stdbuf -oL` so that output is live on a pipe).
# The PCHs: g++ looks for X.gch in every include directory before the header X itself, so
# with `-I /opt/coderunner/pch` a first `#include <iostream>` or `#include <bits/stdc++.h>`
# loads a precompiled one (a PCH is only used for the first include of a file, and only with
# the flags it was built with: PCH_FLAGS; -Winvalid-pch says why one is not used). Each is
# built from a one-line wrapper so that the headers stay system headers (no -Wall noise).
ARG PCH_FLAGS="-std=c++17 -O2"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 g++ coreutils \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/info/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /workspace runner \
 && mkdir -p /opt/coderunner/pch/bits \
 && install -d -o runner -g runner -m 0700 /workspace \
 && g++ -dumpfullversion > /opt/coderunner/version \
 && grep -Eqx '[0-9]+(\.[0-9]+)+' /opt/coderunner/version \
 && for h in iostream bits/stdc++.h; do \
      printf '#include <%s>\n' "$h" > /tmp/pch-wrapper.h \
      && g++ ${PCH_FLAGS} -x c++-header -o "/opt/coderunner/pch/$h.gch" /tmp/pch-wrapper.h \
      && printf '#include <%s>\nint main() {}\n' "$h" \
         | g++ ${PCH_FLAGS} -I /opt/coderunner/pch -Winvalid-pch -H -fsyntax-only -x c++ - 2>&1 \
         | head -n1 | grep -qx "! /opt/coderunner/pch/$h.gch" \
      || exit 1; \
    done \
 && rm -f /tmp/pch-wrapper.h
COPY agent /opt/coderunner/agent
COPY agent_main.py /opt/coderunner/agent_main.py
# Compiled once here: the root is read-only and bytecode unwritable, so every container
# would compile the agent again on its way to READY (~10 ms of CPU per execution).
RUN python3 -m compileall -q --invalidation-mode unchecked-hash /opt/coderunner/agent
USER 10001:10001
WORKDIR /workspace
ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 HOME=/workspace
ENTRYPOINT ["python3", "/opt/coderunner/agent_main.py"]
