"""Render a kustomize overlay: the subset of kustomize the imgrec overlays use.

Supported ``kustomization.yaml`` fields: ``resources`` (files, or folders holding a
``kustomization.yaml``), ``patches`` (strategic-merge patches from ``path:`` or inline
``patch:``, optionally with a ``target``), ``patchesStrategicMerge``, ``images`` (``name``,
``newName``, ``newTag``, ``digest``), ``namespace`` and ``namePrefix``. Anything else is refused
with :class:`~imgrec.errors.OverlayError` rather than silently ignored. The tests compare the
output with ``kubectl kustomize`` on every overlay in ``manifests/``.

Files come from a *reader* so that the same code renders the working tree and a commit of a
watched repository::

    docs = render("manifests/overlays/local", read_worktree("."))
    docs = render("manifests/overlays/local", lambda path: git_show(cache, sha, path))
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from imgrec.errors import OverlayError

# libyaml's loader where PyYAML has it: a render parses ~20 files on every new commit.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Reader = Callable[[str], "str | None"]  # repo-relative posix path -> text, None when absent
Doc = dict[str, Any]

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED = {
    "apiVersion", "kind", "resources", "patches", "patchesStrategicMerge", "images",
    "namespace", "namePrefix",
}  # fmt: skip
# Kinds that get no namespace (kustomize knows only built-in kinds: CRD kinds get one).
_CLUSTER_SCOPED = {
    "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
    "StorageClass",
}  # fmt: skip
# Name references kustomize rewrites when the referenced object is renamed (built-in kinds).
_POD_SPEC_PATHS = (
    ("spec", "template", "spec"),
    ("spec", "jobTemplate", "spec", "template", "spec"),
)


def read_worktree(root: str | Path) -> Reader:
    """A reader of files under ``root`` (a checkout)."""
    base = Path(root)

    def read(path: str) -> str | None:
        target = base / path
        return target.read_text(encoding="utf-8") if target.is_file() else None

    return read


def render(overlay: str, read: Reader) -> list[Doc]:
    """The objects ``kubectl kustomize OVERLAY`` would print, in the same order."""
    return _render(posixpath.normpath(overlay), read, seen=())


def _load(path: str, read: Reader) -> list[Doc]:
    text = read(path)
    if text is None:
        raise OverlayError(f"{path} does not exist", hint="fix the path in kustomization.yaml")
    try:
        docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        raise OverlayError(f"{path} is not valid YAML: {exc}", hint="fix the file") from exc
    for doc in docs:
        if not isinstance(doc, dict) or not doc.get("kind") or not _name(doc):
            raise OverlayError(
                f"{path} holds an object without kind or metadata.name",
                hint="every document must be a Kubernetes object",
            )
    return docs


def _kustomization(folder: str, read: Reader) -> tuple[str, dict[str, Any]] | None:
    for name in KUSTOMIZATION_NAMES:
        path = posixpath.join(folder, name)
        text = read(path)
        if text is None:
            continue
        try:
            kust = yaml.load(text, Loader=_Loader) or {}
        except yaml.YAMLError as exc:
            raise OverlayError(f"{path} is not valid YAML: {exc}", hint="fix the file") from exc
        if not isinstance(kust, dict):
            raise OverlayError(f"{path} is not a mapping", hint="fix the file")
        return path, kust
    return None


def _render(folder: str, read: Reader, seen: tuple[str, ...]) -> list[Doc]:
    if folder in seen:
        raise OverlayError(f"kustomization cycle through {folder}", hint="fix resources:")
    found = _kustomization(folder, read)
    if found is None:
        raise OverlayError(
            f"{folder} has no kustomization.yaml",
            hint="pass an overlay folder such as manifests/overlays/local",
        )
    path, kust = found
    unknown = sorted(set(kust) - SUPPORTED)
    if unknown:
        raise OverlayError(
            f"{path} uses {', '.join(unknown)}, which imgrec's renderer does not support",
            hint=f"supported fields: {', '.join(sorted(SUPPORTED))}",
        )
    docs: list[Doc] = []
    for res in kust.get("resources") or []:
        target = posixpath.normpath(posixpath.join(folder, str(res)))
        if _kustomization(target, read) is not None:
            docs += _render(target, read, (*seen, folder))
        else:
            docs += _load(target, read)
    patches = [{"path": p} for p in kust.get("patchesStrategicMerge") or []]
    for patch in [*(kust.get("patches") or []), *patches]:
        _apply_patch(docs, patch, folder, read, path)
    for image in kust.get("images") or []:
        _set_image(docs, image, path)
    if kust.get("namespace"):
        for doc in docs:
            if doc["kind"] == "Namespace":  # kustomize renames the Namespace object itself
                doc["metadata"]["name"] = kust["namespace"]
            elif doc["kind"] not in _CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = kust["namespace"]
            _namespace_subjects(doc, kust["namespace"])
    if kust.get("namePrefix"):
        _prefix_names(docs, str(kust["namePrefix"]))
    return docs


def _name(doc: Doc) -> str:
    return str((doc.get("metadata") or {}).get("name") or "")


def _apply_patch(docs: list[Doc], patch: Any, folder: str, read: Reader, where: str) -> None:
    if not isinstance(patch, dict) or not ("path" in patch or "patch" in patch):
        raise OverlayError(f"{where}: a patch needs path: or patch:", hint="fix patches:")
    if "path" in patch:
        bodies = _load(posixpath.normpath(posixpath.join(folder, patch["path"])), read)
    else:
        bodies = [d for d in yaml.load_all(patch["patch"], Loader=_Loader) if d]
    for body in bodies:
        if isinstance(body, list):
            raise OverlayError(
                f"{where}: JSON 6902 patches are not supported here",
                hint="write the patch as a strategic-merge patch (a partial object)",
            )
        target = patch.get("target") or {
            "kind": body.get("kind"),
            "name": _name(body),
            **({"namespace": body["metadata"]["namespace"]}
               if body.get("metadata", {}).get("namespace") else {}),
        }  # fmt: skip
        matches = [d for d in docs if _selected(d, target)]
        if not matches:
            raise OverlayError(
                f"{where}: patch for {target.get('kind')}/{target.get('name')} matches nothing",
                hint="the patch's kind and metadata.name must name an object in resources",
            )
        for doc in matches:
            merged = strategic_merge(doc, {k: v for k, v in body.items() if k != "metadata"}
                                     if "target" in patch else body)  # fmt: skip
            doc.clear()
            doc.update(merged)


def _selected(doc: Doc, target: dict[str, Any]) -> bool:
    meta = doc.get("metadata") or {}
    for key, value in target.items():
        if key == "kind" and doc.get("kind") != value:
            return False
        if key == "name" and meta.get("name") != value:
            return False
        if key == "namespace" and meta.get("namespace") != value:
            return False
    return True


def strategic_merge(base: Any, patch: Any) -> Any:
    """Kubernetes strategic merge for the shapes in manifests/: maps merge, ``null`` deletes a
    key, lists of objects that all carry ``name`` merge by name, other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if _named_list(base) and _named_list(patch):
        out_list = copy.deepcopy(base)
        index = {item["name"]: i for i, item in enumerate(out_list)}
        for item in patch:
            if item["name"] in index:
                i = index[item["name"]]
                out_list[i] = strategic_merge(out_list[i], item)
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(patch)


def _named_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(i, dict) and "name" in i for i in value)
    )


def split_image(image: str) -> tuple[str, str, str]:
    """``"repo/name:tag"`` -> ``("repo/name", "tag", "")``; digests come third."""
    name, at, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = ""
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest if at else ""


def _set_image(docs: list[Doc], image: Any, where: str) -> None:
    if not isinstance(image, dict) or not image.get("name"):
        raise OverlayError(f"{where}: an images: entry needs name:", hint="fix images:")
    for container in _containers(docs):
        name, tag, digest = split_image(str(container.get("image", "")))
        if name != image["name"]:
            continue
        new = str(image.get("newName") or name)
        if image.get("digest"):
            container["image"] = f"{new}@{image['digest']}"
        elif image.get("newTag") is not None:
            container["image"] = f"{new}:{image['newTag']}"
        else:
            container["image"] = new + (f"@{digest}" if digest else f":{tag}" if tag else "")


def _containers(value: Any) -> list[dict[str, Any]]:
    """Every container object (under ``containers``/``initContainers``), in any kind."""
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("containers", "initContainers") and isinstance(item, list):
                found += [c for c in item if isinstance(c, dict) and "image" in c]
            found += _containers(item)
    elif isinstance(value, list):
        for item in value:
            found += _containers(item)
    return found


def _namespace_subjects(doc: Doc, namespace: str) -> None:
    if doc["kind"] in ("RoleBinding", "ClusterRoleBinding"):
        for subject in doc.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount":
                subject["namespace"] = namespace


def _prefix_names(docs: list[Doc], prefix: str) -> None:
    renamed: dict[tuple[str, str], str] = {}
    for doc in docs:
        if doc["kind"] == "Namespace" or doc["kind"] == "CustomResourceDefinition":
            continue
        old = _name(doc)
        doc["metadata"]["name"] = prefix + old
        renamed[(doc["kind"], old)] = prefix + old
    for doc in docs:
        _rename_references(doc, renamed)


def _rename_references(doc: Doc, renamed: dict[tuple[str, str], str]) -> None:
    def new(kind: str, name: Any) -> Any:
        return renamed.get((kind, str(name)), name)

    for path in _POD_SPEC_PATHS:
        spec: Any = doc
        for key in path:
            spec = spec.get(key) if isinstance(spec, dict) else None
        if isinstance(spec, dict):
            _rename_in_pod_spec(spec, new)
    if doc["kind"] in ("RoleBinding", "ClusterRoleBinding"):
        ref = doc.get("roleRef") or {}
        if ref.get("kind"):
            ref["name"] = new(ref["kind"], ref.get("name"))
        for subject in doc.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount":
                subject["name"] = new("ServiceAccount", subject.get("name"))


def _rename_in_pod_spec(spec: dict[str, Any], new: Callable[[str, Any], Any]) -> None:
    if "serviceAccountName" in spec:
        spec["serviceAccountName"] = new("ServiceAccount", spec["serviceAccountName"])
    for volume in spec.get("volumes") or []:
        if "secret" in volume:
            volume["secret"]["secretName"] = new("Secret", volume["secret"].get("secretName"))
        if "configMap" in volume:
            volume["configMap"]["name"] = new("ConfigMap", volume["configMap"].get("name"))
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                ref["name"] = new("Secret", ref.get("name"))
        for source in container.get("envFrom") or []:
            if "secretRef" in source:
                source["secretRef"]["name"] = new("Secret", source["secretRef"].get("name"))
