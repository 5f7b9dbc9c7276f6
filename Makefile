# Glue for a fresh Debian machine (as root): `make dev` runs the service, `make test` the suite.
# Each target installs and starts only what is missing, so re-runs are quick.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DOCKERD_LOG ?= /var/log/coderunner-dockerd.log
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup system engine images dev test lint bench

setup: system $(VENV)/.installed engine images

system:
	@need=""; \
	for pair in dockerd:docker.io redis-server:redis-server debootstrap:debootstrap runc:runc runsc:runsc chromium:chromium; do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || need="$$need $${pair#*:}"; \
	done; \
	if [ -n "$$need" ]; then \
	  echo "[setup] installing Debian packages:$$need"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$need; \
	else echo "[setup] Debian packages present"; fi

$(VENV)/.installed: pyproject.toml
	@echo "[setup] installing the Python package and dev tools into $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

# gVisor (runsc) is registered for CODERUNNER_CONTAINER_RUNTIME=runsc; it needs --network=none here.
DAEMON_JSON := /etc/docker/daemon.json

engine:
	@if docker info >/dev/null 2>&1; then echo "[setup] docker engine answers"; \
	  docker info 2>/dev/null | grep -q runsc || echo "[setup] note: runsc is not registered with the running engine (gVisor tests will be skipped)"; \
	else \
	  if [ ! -f $(DAEMON_JSON) ] && command -v runsc >/dev/null; then \
	    echo "[setup] registering gVisor (runsc) in $(DAEMON_JSON)"; mkdir -p /etc/docker; \
	    echo '{"runtimes": {"runsc": {"path": "'"$$(command -v runsc)"'", "runtimeArgs": ["--network=none"]}}}' > $(DAEMON_JSON); \
	  fi; \
	  echo "[setup] starting dockerd (log: $(DOCKERD_LOG))"; \
	  nohup dockerd >$(DOCKERD_LOG) 2>&1 & \
	  for i in $$(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done; \
	  docker info >/dev/null 2>&1 || { echo "dockerd did not start: see $(DOCKERD_LOG)"; exit 1; }; \
	fi

images: $(VENV)/.installed engine
	@$(BIN)/coderunner images build

dev: setup
	$(BIN)/coderunner dev

lint: $(VENV)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python -m loadtests.bench_latency
	$(BIN)/python -m loadtests.bench_pool

# The service's own image (api + worker, dockerfiles/service.Dockerfile): wheels made by a pip
# on Debian's own python3 (the image's interpreter, so dependency markers resolve alike), then
# an offline build on the local base image that `images` bootstraps.
.PHONY: service-image
service-image: images
	rm -rf build/service-wheels build/wheel-venv
	/usr/bin/python3 -m venv build/wheel-venv
	build/wheel-venv/bin/pip wheel -q --disable-pip-version-check --wheel-dir build/service-wheels .
	docker build -f dockerfiles/service.Dockerfile --build-arg BASE=coderunner-base:bookworm \
	  -t coderunner-service:latest .
