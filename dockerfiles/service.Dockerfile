# The service itself: one image, two entry points, `coderunner api` (the default command) and
# `coderunner worker`. Built offline like the runtime images, on the local base image: the
# package and its dependencies come in as wheels made on the host by a pip running on Debian's
# python3 (bookworm's 3.11.2, the image's own interpreter, so that dependency markers such as
# redis's `python_full_version < "3.11.3"` resolve as they will in the image); the build itself
# reaches nothing but the Debian mirror.
#   make service-image
# which runs
#   /usr/bin/python3 -m venv build/wheel-venv
#   build/wheel-venv/bin/pip wheel --wheel-dir build/service-wheels .
#   docker build -f dockerfiles/service.Dockerfile --build-arg BASE=coderunner-base:bookworm \
#       -t coderunner-service:latest .
# With a registry, any Debian bookworm image works: --build-arg BASE=debian:bookworm-slim
#
# The api needs only Redis (CODERUNNER_REDIS_URL). The worker also needs:
# - a Docker engine socket, named by CODERUNNER_DOCKER_URL (unix:// only: the engine adapter
#   refuses tcp://, and DOCKER_HOST is not read), that this user can open. The image runs as
#   uid/gid 10000; give that gid the socket (dockerd --group=10000, as k8s/ does with its
#   docker-in-docker sidecar) or add the socket's group: docker run --group-add <gid> ...
# - the runtime images (coderunner-<language>:latest, CODERUNNER_IMAGE_PREFIX) present on that
#   engine. `coderunner images build` works from this image against any engine, given a base
#   image the engine can pull (CODERUNNER_BASE_IMAGE=debian:bookworm-slim): there is no
#   debootstrap here, and it would need root.
ARG BASE=coderunner-base:bookworm

FROM ${BASE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY build/service-wheels /wheels
COPY dockerfiles /opt/dockerfiles
# A regular (non-editable) install from the wheels alone; pip byte-compiles it, so a read-only
# root needs nothing more. `coderunner images build` looks for the runtime Dockerfiles beside
# the installed packages, as it does beside the sources in a checkout: they are copied there.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-index \
      --find-links /wheels code-runner \
 && cp -r /opt/dockerfiles \
      "$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/" \
 && /opt/venv/bin/coderunner --help >/dev/null

FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \
 && groupadd --gid 10000 coderunner \
 && useradd --uid 10000 --gid 10000 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin coderunner
COPY --from=build /opt/venv /opt/venv
# Inside a container 127.0.0.1 is reachable by nobody else: listen on every interface (the api
# on CODERUNNER_PORT, a worker's metrics on CODERUNNER_WORKER_METRICS_PORT).
ENV PATH=/opt/venv/bin:$PATH \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CODERUNNER_HOST=0.0.0.0
USER 10000:10000
EXPOSE 8000 9100
# coderunner is PID 1 and handles SIGTERM itself: the api closes its sockets with 1001, the
# worker stops reading and drains for up to 25 s (poolmgr/worker.py STOP_GRACE_S).
ENTRYPOINT ["coderunner"]
CMD ["api"]
