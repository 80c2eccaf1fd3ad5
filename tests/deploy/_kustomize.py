"""The subset of kustomize deploy/k8s uses, to render overlays without the kustomize binary (it is
not on PyPI): `resources` (files and kustomization folders), `components` (their patches),
`namespace`, `labels` (added to
metadata.labels), `patches` with a `path` (strategic merge: maps merge, lists of named items merge
by name, other lists are replaced; the target is the patch's kind and name) and `images` (newTag,
newName). Anything else in a kustomization.yaml is refused, so the renderer cannot silently
ignore what the real kustomize would apply."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "components", "namespace", "labels", "patches", "images"}
CLUSTER_SCOPED = {"Namespace"}


def _merge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if value is None:  # strategic merge: null deletes the key
                merged.pop(key, None)
            else:
                merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if (isinstance(base, list) and isinstance(patch, list) and patch
            and all(isinstance(i, dict) and "name" in i for i in base + patch)):
        merged = [copy.deepcopy(i) for i in base]
        index = {item["name"]: n for n, item in enumerate(merged)}
        for item in patch:
            if item["name"] in index:
                merged[index[item["name"]]] = _merge(merged[index[item["name"]]], item)
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(patch)


def _containers(doc: dict) -> list[dict]:
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {}).get(
        "template", {}).get("spec") or {}
    return [*pod.get("containers", []), *pod.get("initContainers", [])]


def _apply_patches(docs: list[dict], folder: Path, patches: list[dict]) -> None:
    for patch_ref in patches:
        if set(patch_ref) != {"path"}:
            raise ValueError(f"{folder}: only `path` patches are implemented: {patch_ref}")
        for patch in yaml.safe_load_all((folder / patch_ref["path"]).read_text()):
            targets = [n for n, d in enumerate(docs)
                       if d["kind"] == patch["kind"] and d["metadata"]["name"] == patch["metadata"]["name"]]
            if len(targets) != 1:
                raise ValueError(f"patch {patch['kind']}/{patch['metadata']['name']} matches {len(targets)}")
            docs[targets[0]] = _merge(docs[targets[0]], patch)


def render(folder: Path) -> list[dict]:
    """The manifests `kustomize build folder` would print (for the supported subset)."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise ValueError(f"{folder}: kustomization fields this renderer does not implement: {unknown}")
    docs: list[dict] = []
    for resource in spec.get("resources", []):
        path = (folder / resource).resolve()
        if path.is_dir():
            docs += render(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for component in spec.get("components", []):
        path = (folder / component).resolve()
        component_spec = yaml.safe_load((path / "kustomization.yaml").read_text())
        unknown = set(component_spec) - {"apiVersion", "kind", "patches"}
        if component_spec.get("kind") != "Component" or unknown:
            raise ValueError(f"{path}: only Components made of `path` patches are implemented")
        _apply_patches(docs, path, component_spec["patches"])
    _apply_patches(docs, folder, spec.get("patches", []))
    for image in spec.get("images", []):
        for doc in docs:
            for container in _containers(doc):
                name, _, _tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image.get('newTag', _tag)}"
    for label in spec.get("labels", []):
        if label.get("includeSelectors"):
            raise ValueError("labels with includeSelectors are not implemented")
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(label["pairs"])
    if "namespace" in spec:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = spec["namespace"]
    return docs
