# Bash runtime: Debian's bash (already in the base) plus the python3 the code-runner agent
# (PID 1, stdlib only) runs on. The builder adds the agent to the context and the image.
# BASE is a local image bootstrapped by `coderunner images build` (no registry needed);
# with a registry, any Debian-based image works: --build-arg BASE=debian:bookworm-slim
ARG BASE=coderunner-base:bookworm
FROM ${BASE}
# python3, not python3-minimal: python3-minimal has no json (nor shutil, dataclasses, pty,
# resource), and python3 also byte-compiles the stdlib, which a read-only root cannot do later.
# /workspace is 0700: the sandbox's tmpfs there takes its mode from this directory.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 bash coreutils \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/info/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /workspace runner \
 && mkdir -p /opt/coderunner \
 && install -d -o runner -g runner -m 0700 /workspace \
 && bash --version | sed -n '1s/^.*version \([0-9][0-9.]*\).*$/\1/p' > /opt/coderunner/version \
 && grep -Eqx '[0-9]+(\.[0-9]+)+' /opt/coderunner/version
COPY agent /opt/coderunner/agent
COPY agent_main.py /opt/coderunner/agent_main.py
# Compiled once here: the root is read-only and bytecode unwritable, so every container
# would compile the agent again on its way to READY (~10 ms of CPU per execution).
RUN python3 -m compileall -q --invalidation-mode unchecked-hash /opt/coderunner/agent
USER 10001:10001
WORKDIR /workspace
ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 HOME=/workspace
ENTRYPOINT ["python3", "/opt/coderunner/agent_main.py"]
