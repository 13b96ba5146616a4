"""The production model of an overlay: where it is named, how it is read and written.

Each overlay under ``manifests/overlays/`` names its production model in one file,
``production-model.yaml``: the ``storageUri`` of the imgrec InferenceService is
``<store>/versions/<NNNN>/model``, so one line gives both the store and the version (the
TorchServe InferenceService in the same file is written from the same version). The serving
image tag is the ``images:`` entry of the overlay's ``kustomization.yaml``. Example::

    prod = read_production("manifests/overlays/production")
    prod.store, prod.version, prod.canary_percent      # "s3://imgrec-models-prod/store", 3, None
    write_production("manifests/overlays/production", prod.store, 4)
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgrec import storage
from imgrec.errors import OverlayError
from imgrec.gitops.kustomize import Doc, render, split_image

MODEL_FILE = "production-model.yaml"
KUSTOMIZATION = "kustomization.yaml"
IMAGE_NAME = "ghcr.io/imgrec/imgrec"
PREDICTOR_FORMAT = "imgrec"  # modelFormat of the imgrec InferenceService (manifests/base)
_VERSION_URI = re.compile(
    r"^(?P<store>.+)/versions/(?P<version>\d{4,})/(?P<kind>model|torchserve)$"
)


@dataclass(frozen=True)
class Production:
    """What an overlay (or a rendered commit) says production is."""

    store: str
    version: int
    canary_percent: int | None = None
    isvc: str = "imgrec"  # the InferenceService's name after rendering (namePrefix applied)

    @property
    def model(self) -> str:
        """The ``STORE@N`` form ``imgrec serve`` takes."""
        return f"{self.store}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "version": self.version,
            "canary_percent": self.canary_percent,
            "isvc": self.isvc,
        }


def version_uri(store: str, version: int, kind: str = "model") -> str:
    """``(store, 3)`` -> ``store/versions/0003/model`` (the layout of :mod:`imgrec.model_store`)."""
    return storage.join(store, "versions", f"{version:04d}", kind)


def parse_storage_uri(uri: str) -> tuple[str, int]:
    """``.../store/versions/0003/model`` -> ``(".../store", 3)``; ``OverlayError`` otherwise."""
    match = _VERSION_URI.match(str(uri).rstrip("/"))
    if not match:
        raise OverlayError(
            f"storageUri {uri!r} does not name a model store version",
            hint="expected STORE/versions/NNNN/model; `imgrec models promote V --git` writes it",
        )
    return match["store"], int(match["version"])


def production_from_docs(docs: list[Doc], where: str) -> Production:
    """The production model named by rendered objects: the InferenceService whose model
    format is ``imgrec``; its ``canaryTrafficPercent`` if set."""
    found = [
        d
        for d in docs
        if d.get("kind") == "InferenceService"
        and ((d.get("spec") or {}).get("predictor") or {}).get("model", {}).get("modelFormat", {})
        .get("name") == PREDICTOR_FORMAT
    ]  # fmt: skip
    if len(found) != 1:
        raise OverlayError(
            f"{where} renders {len(found)} imgrec InferenceServices, expected exactly one",
            hint="the overlay must include manifests/base (modelFormat imgrec)",
        )
    predictor = found[0]["spec"]["predictor"]
    uri = predictor["model"].get("storageUri")
    if not uri:
        raise OverlayError(f"{where}: the InferenceService has no storageUri", hint=MODEL_FILE)
    store, version = parse_storage_uri(uri)
    canary = predictor.get("canaryTrafficPercent")
    if canary is not None and (not isinstance(canary, int) or not 0 <= canary <= 100):
        raise OverlayError(
            f"{where}: canaryTrafficPercent must be a whole number 0-100, got {canary!r}",
            hint=f"fix {MODEL_FILE}",
        )
    return Production(store, version, canary, str(found[0]["metadata"]["name"]))


def read_production(overlay: str | Path) -> Production:
    """What the overlay folder on disk (a checkout) says production is."""
    path = Path(overlay).resolve()
    docs = render(path.as_posix(), _absolute_reader)
    return production_from_docs(docs, str(overlay))


def _absolute_reader(path: str) -> str | None:
    target = Path(path)
    return target.read_text(encoding="utf-8") if target.is_file() else None


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML()  # round-trip: comments and layout of the file are kept
    y.preserve_quotes = True
    y.width = 4096
    return y


def write_production(
    overlay: str | Path, store: str, version: int, *, canary_percent: int | None = None
) -> Path:
    """Point the overlay's ``production-model.yaml`` at ``store`` version ``version``.

    With ``canary_percent`` the imgrec InferenceService gets ``canaryTrafficPercent`` (the
    new version takes that share, the previous one the rest); without it the key is removed.
    """
    path = Path(overlay) / MODEL_FILE
    if not path.is_file():
        raise OverlayError(f"{path} does not exist", hint="every overlay needs its model file")
    y = _yaml()
    docs = list(y.load_all(path.read_text(encoding="utf-8")))
    kinds = {"imgrec-torchserve": "torchserve"}
    touched = 0
    for doc in docs:
        if not doc or doc.get("kind") != "InferenceService":
            continue
        predictor = doc["spec"]["predictor"]
        kind = kinds.get(str(doc["metadata"]["name"]), "model")
        predictor["model"]["storageUri"] = version_uri(store, version, kind)
        if kind == "model":
            touched += 1
            if canary_percent is not None:
                predictor["canaryTrafficPercent"] = int(canary_percent)
            else:
                predictor.pop("canaryTrafficPercent", None)
    if touched != 1:
        raise OverlayError(f"{path} must hold the imgrec InferenceService", hint="restore it")
    buf = io.StringIO()
    y.dump_all(docs, buf)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    tmp.replace(path)
    return path


def read_image_tag(overlay: str | Path) -> str:
    """The serving image tag the overlay sets (its ``images:`` entry for the imgrec image)."""
    for entry in _images(Path(overlay))[1]:
        if entry.get("name") == IMAGE_NAME:
            return str(entry.get("newTag", ""))
    raise OverlayError(
        f"{overlay}/{KUSTOMIZATION} has no images: entry for {IMAGE_NAME}",
        hint="add images: [{name: ghcr.io/imgrec/imgrec, newTag: TAG}]",
    )


def write_image_tag(overlay: str | Path, tag: str) -> Path:
    """Set the serving image tag in the overlay's ``kustomization.yaml``."""
    name, parsed_tag, digest = split_image(f"{IMAGE_NAME}:{tag}")
    if (
        name != IMAGE_NAME
        or not parsed_tag
        or digest
        or not re.fullmatch(r"[\w][\w.-]{0,127}", tag)
    ):
        raise OverlayError(f"bad image tag {tag!r}", hint="a tag such as 0.1.0 or a commit SHA")
    path, images, kust, y = _images(Path(overlay))
    for entry in images:
        if entry.get("name") == IMAGE_NAME:
            entry["newTag"] = tag
            break
    else:
        images.append({"name": IMAGE_NAME, "newTag": tag})
    buf = io.StringIO()
    y.dump(kust, buf)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def _images(overlay: Path) -> tuple[Path, Any, Any, Any]:
    path = overlay / KUSTOMIZATION
    if not path.is_file():
        raise OverlayError(f"{path} does not exist", hint="pass an overlay folder")
    y = _yaml()
    kust = y.load(path.read_text(encoding="utf-8"))
    if "images" not in kust:
        kust["images"] = []
    return path, kust["images"], kust, y
