# Python runtime: Debian's python3 plus the code-runner agent, which waits warm for one job.
# BASE is a local image bootstrapped by `coderunner images build` (no registry needed);
# with a registry, any Debian-based image works: --build-arg BASE=debian:bookworm-slim
ARG BASE=coderunner-base:bookworm
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /workspace runner \
 && mkdir -p /opt/coderunner /workspace && chown runner:runner /workspace
COPY agent.py /opt/coderunner/agent.py
USER 10001:10001
WORKDIR /workspace
ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 HOME=/workspace
ENTRYPOINT ["python3", "/opt/coderunner/agent.py"]
