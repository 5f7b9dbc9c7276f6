# Python runtime: Debian's python3, whose interpreter the agent keeps loaded and forks per job.
# BASE is a local image bootstrapped by `coderunner images build` (no registry needed);
# with a registry, any Debian-based image works: --build-arg BASE=debian:bookworm-slim
ARG BASE=coderunner-base:bookworm
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /workspace runner \
 && mkdir -p /opt/coderunner && install -d -o runner -g runner -m 0700 /workspace \
 && python3 -c "import sys; print('%d.%d.%d' % sys.version_info[:3])" > /opt/coderunner/version
COPY agent /opt/coderunner/agent
COPY agent_main.py /opt/coderunner/agent_main.py
# Compiled once here: the root is read-only and bytecode unwritable, so every container
# would compile the agent again on its way to READY (~10 ms of CPU per execution).
RUN python3 -m compileall -q --invalidation-mode unchecked-hash /opt/coderunner/agent
USER 10001:10001
WORKDIR /workspace
ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 HOME=/workspace
ENTRYPOINT ["python3", "/opt/coderunner/agent_main.py"]
CMD ["python"]
