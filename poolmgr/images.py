"""Builds the runtime images offline: a debootstrapped base image, then one image per language.

There is no registry to pull from on an air-gapped machine, so the base image is
bootstrapped from Debian packages and built from that root filesystem; users with a registry
can point `CODERUNNER_BASE_IMAGE` at an official image instead. The engine is reached through
the workers' own adapter, so the product has one Docker client.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TextIO

import anyio

from poolmgr.engine import Engine
from poolmgr.engine_errors import EngineError
from poolmgr.sandbox import VERSION_LABEL
from runtimes import agent
from runtimes.registry import RUNTIMES
from runtimes.runtime import Runtime
from runtimes.settings import Settings

DOCKERFILES = Path(__file__).resolve().parent.parent / "dockerfiles"
AGENT = Path(agent.__file__).resolve().parent
# The image's entry point: the agent package sits beside it, at /opt/coderunner/agent.
AGENT_MAIN = b"import sys\n\nfrom agent.__main__ import main\n\nmain(sys.argv[1:])\n"
LOCAL_BASE = "coderunner-base:bookworm"
HASH_LABEL = "code-runner.build-hash"
VERSION_FILE = "/opt/coderunner/version"  # each Dockerfile writes its language's version here
# An image from a root filesystem tarball, the way official base images are made.
ROOTFS_DOCKERFILE = b"FROM scratch\nADD rootfs.tar /\n"


class ImageBuildError(RuntimeError):
    """An image could not be built; the message says what to do."""


def _say(out: TextIO, message: str) -> None:
    print(f"[images] {message}", file=out, flush=True)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _context(runtime: Runtime) -> tuple[bytes, str]:
    """The build context as a tar, and a hash of its inputs: the Dockerfile, the agent
    package with its start script, and the language's own files (`dockerfiles/<language>/`)."""
    files = {
        "Dockerfile": (DOCKERFILES / runtime.dockerfile).read_bytes(),
        "agent_main.py": AGENT_MAIN,
    }
    for source in sorted(AGENT.glob("*.py")):
        files[f"agent/{source.name}"] = source.read_bytes()
    support = DOCKERFILES / runtime.language
    for source in sorted(support.rglob("*")) if support.is_dir() else []:
        if source.is_file():
            files[f"{runtime.language}/{source.relative_to(support)}"] = source.read_bytes()
    buf = io.BytesIO()
    digest = hashlib.sha256()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            _add_bytes(tar, name, data)
            digest.update(name.encode() + b"\0" + data)
    return buf.getvalue(), digest.hexdigest()[:16]


def _bootstrap_context(tmp: Path, out: TextIO) -> Path:
    """Debootstrap Debian into `tmp`; a build context of its tarred root filesystem."""
    if shutil.which("debootstrap") is None:
        raise ImageBuildError(
            "no base image and no debootstrap to build one: run `apt-get install -y debootstrap`"
            " or set CODERUNNER_BASE_IMAGE to an image you have"
        )
    rootfs = tmp / "rootfs"
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
    _say(out, "packing the root filesystem")
    tarball = tmp / "rootfs.tar"  # by tar(1): it keeps owners, modes and device nodes
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
    context = tmp / "context.tar"
    with tarfile.open(context, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", ROOTFS_DOCKERFILE)
        tar.add(tarball, arcname="rootfs.tar")
    return context


async def _build(
    engine: Engine,
    context: IO[bytes],
    tag: str,
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
    out: TextIO,
) -> None:
    """Build `tag`, showing its steps; checked afterwards, as a cut-off build output
    stream cannot be told from a finished one."""

    def progress(line: str) -> None:
        line = line.strip()
        if line.startswith(("Step ", "Successfully")):
            _say(out, "  " + line)

    await engine.build(context, tag, buildargs, labels, progress)
    built = await engine.image_labels(tag)
    if built is None or any(built.get(k) != v for k, v in labels.items()):
        raise ImageBuildError(f"the build of {tag} ended without the image; see its output above")


async def ensure_base(engine: Engine, name: str, out: TextIO) -> None:
    """Make sure the base image exists: pull it, or bootstrap the local default."""
    if await engine.image_labels(name) is not None:
        _say(out, f"base image {name} present")
        return
    if name != LOCAL_BASE:
        _say(out, f"pulling base image {name}")
        try:
            await engine.pull(name)
        except EngineError as exc:
            raise ImageBuildError(
                f"cannot pull {name} ({exc}); unset CODERUNNER_BASE_IMAGE to bootstrap"
                f" {LOCAL_BASE} locally instead"
            ) from exc
        return
    with tempfile.TemporaryDirectory(prefix="coderunner-rootfs-") as tmp:
        context = await anyio.to_thread.run_sync(_bootstrap_context, Path(tmp), out)
        _say(out, f"importing {name}")
        with context.open("rb") as fileobj:
            await _build(engine, fileobj, name, {}, {}, out)


async def build_runtime(engine: Engine, runtime: Runtime, settings: Settings, out: TextIO) -> str:
    """Build one language's image unless an image of the same inputs exists."""
    tag = runtime.image(settings.image_prefix)
    context, digest = _context(runtime)
    digest = hashlib.sha256(f"{digest}:{settings.base_image}".encode()).hexdigest()[:16]
    existing = await engine.image_labels(tag)
    if existing and existing.get(HASH_LABEL) == digest and VERSION_LABEL in existing:
        _say(out, f"{tag} is up to date")
        return tag
    _say(out, f"building {tag}")
    buildargs = {"BASE": settings.base_image}
    await _build(engine, io.BytesIO(context), tag, buildargs, {HASH_LABEL: digest}, out)
    version = (await engine.read_image_file(tag, VERSION_FILE)).decode().strip()
    labels = {HASH_LABEL: digest, VERSION_LABEL: version}
    await _build(engine, io.BytesIO(_label_context(tag, labels)), tag, {}, labels, out)
    _say(out, f"built {tag} ({runtime.language} {version})")
    return tag


def _label_context(image: str, labels: Mapping[str, str]) -> bytes:
    """A build context that only labels `image`: the version is known once it is built."""
    lines = [f"FROM {image}", *(f"LABEL {k}={json.dumps(v)}" for k, v in labels.items())]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", "\n".join(lines).encode() + b"\n")
    return buf.getvalue()


async def _build_all(settings: Settings, languages: list[str], out: TextIO) -> None:
    async with Engine(settings.docker_url) as engine:
        if not await engine.ping():
            raise ImageBuildError(
                f"no docker engine answers at {settings.docker_url}: start dockerd (`make engine`)"
            )
        await ensure_base(engine, settings.base_image, out)
        for language in languages:
            await build_runtime(engine, RUNTIMES[language], settings, out)


def build_images(settings: Settings, languages: list[str], out: TextIO = sys.stdout) -> None:
    """`coderunner images build`: the base image, then each requested runtime image."""
    unknown = [lang for lang in languages if lang not in RUNTIMES]
    if unknown:
        raise ImageBuildError(f"unknown languages {unknown}; known: {sorted(RUNTIMES)}")
    try:
        anyio.run(_build_all, settings, languages or sorted(RUNTIMES), out)
    except EngineError as exc:
        raise ImageBuildError(f"the docker engine failed: {exc}") from exc
