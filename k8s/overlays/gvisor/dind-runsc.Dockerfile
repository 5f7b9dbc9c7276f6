# The docker:dind engine with gVisor's runsc registered as the runtime "runsc", for
# k8s/overlays/gvisor. runsc is a static binary: Debian's package (gVisor release 20221219)
# here; gVisor's own releases are newer (https://gvisor.dev/docs/user_guide/install/).
FROM debian:bookworm-slim AS gvisor
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends runsc \
 && rm -rf /var/lib/apt/lists/*

FROM docker:27-dind
COPY --from=gvisor /usr/bin/runsc /usr/local/bin/runsc
# --network=none: the sandboxes have no network (network_mode none), so runsc needs no netstack;
# the same registration as `make engine` writes for the host's engine.
RUN mkdir -p /etc/docker \
 && echo '{"runtimes": {"runsc": {"path": "/usr/local/bin/runsc", "runtimeArgs": ["--network=none"]}}}' \
      > /etc/docker/daemon.json
