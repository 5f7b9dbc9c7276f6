"""Builds the runtime images offline: a debootstrapped base image, then one image per language.

There is no registry to pull from on an air-gapped machine, so the base image is
bootstrapped from Debian packages and imported; users with a registry can point
`CODERUNNER_BASE_IMAGE` at an official image instead.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import docker
import docker.errors

from runtimes import agent
from runtimes.registry import RUNTIMES, Runtime
from runtimes.settings import Settings

DOCKERFILES = Path(__file__).resolve().parent.parent / "dockerfiles"
LOCAL_BASE = "coderunner-base:bookworm"
HASH_LABEL = "code-runner.build-hash"


class ImageBuildError(RuntimeError):
    """An image could not be built; the message says what to do."""


def _say(out: TextIO, message: str) -> None:
    print(f"[images] {message}", file=out, flush=True)


def _context(runtime: Runtime) -> tuple[bytes, str]:
    """The build context (Dockerfile + agent) as a tar, and a hash of its inputs."""
    files = {
        "Dockerfile": (DOCKERFILES / runtime.dockerfile).read_bytes(),
        "agent.py": Path(agent.__file__).read_bytes(),
    }
    buf = io.BytesIO()
    digest = hashlib.sha256()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            digest.update(name.encode() + b"\0" + data)
    return buf.getvalue(), digest.hexdigest()[:16]


def _bootstrap_base(client: docker.DockerClient, name: str, out: TextIO) -> None:
    if shutil.which("debootstrap") is None:
        raise ImageBuildError(
            "no base image and no debootstrap to build one: run `apt-get install -y debootstrap`"
            " or set CODERUNNER_BASE_IMAGE to an image you have"
        )
    with tempfile.TemporaryDirectory(prefix="coderunner-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _say(out, f"bootstrapping Debian bookworm into {rootfs} (about a minute)")
        proc = subprocess.Popen(
            ["debootstrap", "--variant=minbase", "bookworm", str(rootfs)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(
                ("I: Retrieving", "I: Extracting", "I: Unpacking", "I: Configuring", "I: Base")
            ):
                _say(out, "  " + line.strip())
        if proc.wait() != 0:
            raise ImageBuildError("debootstrap failed: check that Debian mirrors are reachable")
        tarball = Path(tmp) / "rootfs.tar"
        _say(out, "packing the root filesystem")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        repo, _, tag = name.partition(":")
        _say(out, f"importing {name}")
        client.api.import_image_from_file(str(tarball), repository=repo, tag=tag or "latest")


def ensure_base(client: docker.DockerClient, name: str, out: TextIO) -> None:
    """Make sure the base image exists: pull it, or bootstrap the local default."""
    try:
        client.images.get(name)
        _say(out, f"base image {name} present")
        return
    except docker.errors.ImageNotFound:
        pass
    if name == LOCAL_BASE:
        _bootstrap_base(client, name, out)
        return
    _say(out, f"pulling base image {name}")
    try:
        client.images.pull(name)
    except docker.errors.APIError as exc:
        raise ImageBuildError(
            f"cannot pull {name} ({exc.explanation}); unset CODERUNNER_BASE_IMAGE to bootstrap"
            f" {LOCAL_BASE} locally instead"
        ) from exc


def _log_build(chunks: Iterable[dict[str, Any]], out: TextIO) -> None:
    for chunk in chunks:
        if "error" in chunk:
            raise ImageBuildError(f"docker build failed: {chunk['error'].strip()}")
        line = str(chunk.get("stream", "")).strip()
        if line.startswith("Step ") or line.startswith("Successfully"):
            _say(out, "  " + line)


def build_runtime(
    client: docker.DockerClient, runtime: Runtime, settings: Settings, out: TextIO
) -> str:
    """Build one language's image unless an image of the same inputs exists."""
    tag = runtime.image(settings.image_prefix)
    context, digest = _context(runtime)
    digest = hashlib.sha256(f"{digest}:{settings.base_image}".encode()).hexdigest()[:16]
    try:
        existing = client.images.get(tag)
        if existing.labels.get(HASH_LABEL) == digest:
            _say(out, f"{tag} is up to date")
            return tag
    except docker.errors.ImageNotFound:
        pass
    _say(out, f"building {tag}")
    chunks = client.api.build(
        fileobj=io.BytesIO(context),
        custom_context=True,
        tag=tag,
        buildargs={"BASE": settings.base_image},
        labels={HASH_LABEL: digest},
        rm=True,
        forcerm=True,
        decode=True,
    )
    _log_build(chunks, out)
    _say(out, f"built {tag}")
    return tag


def build_images(settings: Settings, languages: list[str], out: TextIO = sys.stdout) -> None:
    """`coderunner images build`: the base image, then each requested runtime image."""
    unknown = [lang for lang in languages if lang not in RUNTIMES]
    if unknown:
        raise ImageBuildError(f"unknown languages {unknown}; known: {sorted(RUNTIMES)}")
    try:
        client = docker.DockerClient(base_url=settings.docker_url, version="auto", timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        raise ImageBuildError(
            f"no docker engine answers at {settings.docker_url}: start dockerd (`make engine`)"
        ) from exc
    try:
        ensure_base(client, settings.base_image, out)
        for language in languages or sorted(RUNTIMES):
            build_runtime(client, RUNTIMES[language], settings, out)
    finally:
        client.close()
