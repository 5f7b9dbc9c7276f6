# Java runtime: Debian's OpenJDK 17 (headless JDK: javac and java) plus the python3 the
# code-runner agent (PID 1, stdlib only) runs on, and the in-container launcher
# (java/Launcher.java), compiled here into /opt/coderunner. The builder adds the agent to the
# context and the image.
# BASE is a local image bootstrapped by `coderunner images build` (no registry needed);
# with a registry, any Debian-based image works: --build-arg BASE=debian:bookworm-slim
ARG BASE=coderunner-base:bookworm
FROM ${BASE}
# python3, not python3-minimal: python3-minimal has no json (nor shutil, dataclasses, pty,
# resource), and python3 also byte-compiles the stdlib, which a read-only root cannot do later.
# /workspace is 0700: the sandbox's tmpfs there takes its mode from this directory.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 openjdk-17-jdk-headless \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/info/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /workspace runner \
 && mkdir -p /opt/coderunner \
 && install -d -o runner -g runner -m 0700 /workspace \
 && javac -version 2>&1 | sed -n 's/^javac \([0-9][0-9.]*\).*$/\1/p' > /opt/coderunner/version \
 && grep -Eqx '[0-9]+(\.[0-9]+)*' /opt/coderunner/version
# javac.jsa: an AppCDS archive of the classes javac loads for a typical small program,
# recorded while compiling java/CdsTraining.java; `javac -J-XX:SharedArchiveFile=
# /opt/coderunner/javac.jsa` starts about twice as fast with it (the Launcher's compile checks
# that it maps). Only for javac: it turns off the module-graph part of the JDK's default
# archive, so `java` alone starts a little slower with it.
COPY java/Launcher.java java/CdsTraining.java /opt/coderunner/
RUN javac -J-XX:ArchiveClassesAtExit=/opt/coderunner/javac.jsa -J-XX:+UseSerialGC \
        -J-XX:TieredStopAtLevel=1 -d /tmp/cds-training /opt/coderunner/CdsTraining.java \
 && javac -J-XX:SharedArchiveFile=/opt/coderunner/javac.jsa -J-Xshare:on \
        -d /opt/coderunner /opt/coderunner/Launcher.java \
 && rm -rf /tmp/cds-training /opt/coderunner/CdsTraining.java
COPY agent /opt/coderunner/agent
COPY agent_main.py /opt/coderunner/agent_main.py
# Compiled once here: the root is read-only and bytecode unwritable, so every container
# would compile the agent again on its way to READY (~10 ms of CPU per execution).
RUN python3 -m compileall -q --invalidation-mode unchecked-hash /opt/coderunner/agent
USER 10001:10001
WORKDIR /workspace
ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 HOME=/workspace
ENTRYPOINT ["python3", "/opt/coderunner/agent_main.py"]
