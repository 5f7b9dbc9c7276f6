# Go runtime: Debian's Go toolchain (its standard library comes precompiled in
# $GOROOT/pkg/linux_amd64) plus the python3 the code-runner agent (PID 1, stdlib only) runs
# on. The builder puts the agent package and its start script in the build context.
# BASE is a local image bootstrapped by `coderunner images build` (no registry needed);
# with a registry, any Debian-based image works: --build-arg BASE=debian:bookworm-slim
ARG BASE=coderunner-base:bookworm
FROM ${BASE}
# python3, not python3-minimal: python3-minimal has no json (nor shutil, dataclasses, pty,
# resource), and python3 also byte-compiles the stdlib, which a read-only root cannot do later.
# /workspace is 0700: the sandbox's tmpfs there takes its mode from this directory.
# /opt/coderunner/go/importcfg maps every standard package to its precompiled archive, so a
# program is built by the compiler and the linker directly, without the go command (which
# costs more than the compile itself and wants a writable build cache):
#   $(go env GOTOOLDIR)/compile -p main -complete -importcfg /opt/coderunner/go/importcfg \
#       -pack -o /tmp/main.a *.go && .../link -s -w -importcfg ... -o main /tmp/main.a
# The smoke test below checks that route. pkg/linux_amd64/cmd (140 MB) holds the compiled
# packages of the Go tools themselves, which no user program can import.
# No gcc: cgo programs (import "C") cannot be built; net and os/user link internally.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 golang-go \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/info/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /workspace runner \
 && mkdir -p /opt/coderunner/go \
 && install -d -o runner -g runner -m 0700 /workspace \
 && go version | sed -n 's/^go version go\([0-9][0-9.]*\).*$/\1/p' > /opt/coderunner/version \
 && grep -Eqx '[0-9]+(\.[0-9]+)+' /opt/coderunner/version \
 && rm -rf "$(go env GOROOT)/pkg/linux_amd64/cmd" \
 && export GOCACHE=/tmp/go-build GO111MODULE=off \
 && go list -f '{{if .Target}}packagefile {{.ImportPath}}={{.Target}}{{end}}' std \
      | grep . > /opt/coderunner/go/importcfg \
 && mkdir /tmp/smoke && cd /tmp/smoke \
 && printf 'package main\n\nimport (\n\t"fmt"\n\t"net"\n)\n\nfunc main() { fmt.Println(net.ParseIP("::1") != nil) }\n' > main.go \
 && tools="$(go env GOTOOLDIR)" \
 && "$tools/compile" -p main -complete -importcfg /opt/coderunner/go/importcfg -pack -o main.a main.go \
 && "$tools/link" -s -w -importcfg /opt/coderunner/go/importcfg -o main main.a \
 && test "$(./main)" = true \
 && cd / && rm -rf /tmp/smoke /tmp/go-build
COPY go/build.sh /opt/coderunner/go/build.sh
COPY agent /opt/coderunner/agent
COPY agent_main.py /opt/coderunner/agent_main.py
# Compiled once here: the root is read-only and bytecode unwritable, so every container
# would compile the agent again on its way to READY (~10 ms of CPU per execution).
RUN python3 -m compileall -q --invalidation-mode unchecked-hash /opt/coderunner/agent
USER 10001:10001
WORKDIR /workspace
# For the go command, if it is ever used: GOPATH mode (no go.mod), cache in the workspace.
ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 HOME=/workspace \
    GO111MODULE=off GOPATH=/workspace/go GOCACHE=/workspace/.cache/go-build
ENTRYPOINT ["python3", "/opt/coderunner/agent_main.py"]
