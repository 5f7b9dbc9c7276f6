"""A tiny kustomize: the subset that k8s/ uses, so the manifests render without kubectl.

`resources` (files and directories), `configMapGenerator` (files, labels, no name hash) and
`patches` given by `path`, applied as strategic merges the way kustomize applies them: maps
merge, lists of named items merge by name (the patch's items first, then the originals it did
not name, kustomize's order), other lists are replaced, and `$patch: delete` removes the
object. A kustomization using anything else is refused rather than rendered wrongly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]
KNOWN_FIELDS = {"apiVersion", "kind", "resources", "configMapGenerator", "patches"}


class UnsupportedKustomization(ValueError):
    """A kustomization needs more than this renderer does."""


def render(directory: Path) -> list[Object]:
    """Every object of the kustomization in `directory`, in kustomize's resource order."""
    spec = load_one(directory / "kustomization.yaml")
    unknown = set(spec) - KNOWN_FIELDS
    if unknown:
        raise UnsupportedKustomization(f"{directory}: {sorted(unknown)}")
    objects: list[Object] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        objects += render(path) if path.is_dir() else load_all(path)
    objects += [
        _config_map(directory, generator) for generator in spec.get("configMapGenerator", [])
    ]
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise UnsupportedKustomization(f"{directory}: patch {patch}")
        objects = _apply(objects, load_one(directory / patch["path"]))
    ids = [identity(o) for o in objects]
    if len(set(ids)) != len(ids):
        raise UnsupportedKustomization(f"{directory}: an object is defined twice")
    return objects


def identity(obj: Object) -> tuple[str, str, str, str]:
    """What kustomize tells objects apart by: group/version, kind, namespace, name."""
    meta = obj.get("metadata") or {}
    return obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"]


def load_all(path: Path) -> list[Object]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def load_one(path: Path) -> Object:
    docs = load_all(path)
    if len(docs) != 1:
        raise UnsupportedKustomization(f"{path}: {len(docs)} documents, expected one")
    return docs[0]


def _config_map(directory: Path, generator: Object) -> Object:
    options = generator.get("options", {})
    if not options.get("disableNameSuffixHash") or set(generator) - {
        "name",
        "namespace",
        "files",
        "options",
    }:
        raise UnsupportedKustomization(f"{directory}: generator {generator['name']}")
    metadata: Object = {"name": generator["name"]}
    if "namespace" in generator:
        metadata["namespace"] = generator["namespace"]
    if "labels" in options:
        metadata["labels"] = options["labels"]
    files = [directory / f for f in generator["files"]]
    data = {f.name: f.read_text() for f in files}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def _apply(objects: list[Object], patch: Object) -> list[Object]:
    target = identity(patch)
    matches = [i for i, obj in enumerate(objects) if identity(obj) == target]
    if len(matches) != 1:
        raise UnsupportedKustomization(f"patch {target} matches {len(matches)} objects")
    (index,) = matches
    if patch.get("$patch") == "delete":
        return [*objects[:index], *objects[index + 1 :]]
    return [*objects[:index], merge(objects[index], patch), *objects[index + 1 :]]


def merge(original: Any, patch: Any) -> Any:
    """A strategic merge of `patch` into `original`, for the shapes k8s/ patches."""
    if isinstance(original, dict) and isinstance(patch, dict):
        merged = dict(original)
        for key, value in patch.items():
            merged[key] = merge(original[key], value) if key in original else value
        return merged
    if isinstance(original, list) and isinstance(patch, list) and _named(original + patch):
        by_name = {item["name"]: item for item in original}
        patched = [merge(by_name[i["name"]], i) if i["name"] in by_name else i for i in patch]
        named = {item["name"] for item in patch}
        return patched + [item for item in original if item["name"] not in named]
    return patch


def _named(items: list[Any]) -> bool:
    return all(isinstance(item, dict) and "name" in item for item in items)
