"""Find a model's checked ONNX export without importing torch.

The export cache (:func:`imgrec.inference.onnx.cache_path`) is keyed on the built network's
state dict, so finding a file there needs torch, the network built and its weights loaded:
seconds before the first prediction. This index finds it from what is on disk instead: an
entry per model, keyed on

* the bytes of the model directory's ``model.json`` and ``weights.safetensors`` (a local
  directory; any copy of the same bytes finds the same entry), or a pretrained name and the
  bytes of its shipped weights file (:data:`imgrec.models.offline.OFFLINE_FILES`);
* the installed versions of imgrec, torch, torchvision, timm, onnx and ONNX Runtime (an
  upgrade builds, exports and checks again);

written only once the export has passed its check against PyTorch
(:func:`imgrec.inference.onnx.check_export`), and holding the export's file name and size
and the model card (classes, preprocessing)::

    found = find_export("runs/a/model")      # CachedExport(path, card) or None
    session = cpu_session(found.path, threads=1)

A miss (no entry, another version, an ``s3://`` model, a pretrained name downloaded rather
than shipped) is the torch path: build, export, check, then :func:`record_export`. Entries are
one small JSON file each under ``$IMGREC_CACHE/onnx/index/``, written atomically.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgrec import storage
from imgrec.errors import ImgrecError
from imgrec.models.card import CARD_FILE, WEIGHTS_FILE, ModelCard
from imgrec.models.offline import OFFLINE_FILES

log = logging.getLogger(__name__)

INDEX_FORMAT = 1
VERSIONED = ("torch", "torchvision", "timm", "onnx", "onnxruntime")
"""Distributions whose version is part of every key (with imgrec's own)."""


@dataclass(frozen=True)
class CachedExport:
    """A checked fp32 export found by :func:`find_export`: the file and the model card (what
    a classifier's ``card`` and ``classes`` are, without the network)."""

    path: Path
    card: ModelCard

    @property
    def classes(self) -> list[str]:
        return list(self.card.classes)


@functools.lru_cache(maxsize=1)
def runtime_versions() -> dict[str, str]:
    """``{"imgrec": ..., "torch": ..., ...}`` from the installed distributions' metadata
    (no import of the packages themselves); ``"none"`` for one not installed."""
    from importlib import metadata

    from imgrec import __version__

    found = {"imgrec": __version__}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "none"
    return found


def source_files(model: str | os.PathLike[str]) -> list[Path] | None:
    """The files that define ``model``: a local model directory's card and weights, or the
    shipped weights file of a pretrained name; ``None`` when the index cannot key it
    (``s3://``, a missing file, a name whose weights are downloaded)."""
    text = os.fspath(model)
    if storage.is_s3(text):
        return None
    folder = Path(text)
    if (folder / CARD_FILE).is_file():
        files = [folder / CARD_FILE, folder / WEIGHTS_FILE]
        return files if files[1].is_file() else None
    finder = OFFLINE_FILES.get(text)
    if finder is None:
        return None
    try:
        path = finder()
    except ImgrecError:  # the package is not installed: the torch path says so
        return None
    return [path] if path.is_file() else None


def source_stamp(model: str | os.PathLike[str]) -> tuple[tuple[str, int, int], ...] | None:
    """``(path, size, mtime_ns)`` of :func:`source_files`: taken when a model is loaded and
    compared before its entry is written, so an entry never pairs files changed in between
    with the export of what was loaded."""
    files = source_files(model)
    if files is None:
        return None
    try:
        return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    except OSError:
        return None


def index_key(model: str | os.PathLike[str]) -> str | None:
    """The entry's key: SHA-256 over the source files' bytes, what they are (a directory, or
    which pretrained name) and :func:`runtime_versions`; ``None`` when not keyable."""
    files = source_files(model)
    if files is None:
        return None
    kind = "dir" if len(files) == 2 else f"pretrained:{os.fspath(model)}"
    head = {"format": INDEX_FORMAT, "kind": kind, "versions": runtime_versions()}
    digest = hashlib.sha256(json.dumps(head, sort_keys=True).encode())
    try:
        for path in files:
            with open(path, "rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
    except OSError:
        return None
    return digest.hexdigest()


def index_folder() -> Path:
    """``$IMGREC_CACHE/onnx/index``."""
    return storage.cache_folder("onnx") / "index"


def find_export(model: str | os.PathLike[str]) -> CachedExport | None:
    """The checked fp32 export of ``model`` (a local model directory or a pretrained name) if
    the index has one whose file is still there, else ``None``. Never imports torch."""
    key = index_key(model)
    if key is None:
        return None
    entry = index_folder() / f"{key}.json"
    try:
        data = json.loads(entry.read_text(encoding="utf-8"))
        name = str(data["onnx"])
        path = storage.cache_folder("onnx") / name
        if Path(name).name != name or path.stat().st_size != int(data["size"]):
            return None
        card = ModelCard.from_dict(data["card"], source=str(entry))
    except (OSError, ValueError, KeyError, TypeError, ImgrecError):
        return None  # no entry, or one this imgrec cannot read: the torch path rewrites it
    return CachedExport(path, card)


def record_export(classifier: Any, path: str | os.PathLike[str], difference: float) -> bool:
    """Add ``classifier``'s checked fp32 export at ``path`` to the index; returns whether it
    did. Only a classifier loaded by name or from a local directory
    (``imgrec.predictor.load_model`` sets its ``source`` and ``source_stamp``) whose files
    are unchanged since, and only an export in the cache folder. Best effort: a cache that
    cannot be written is logged, and the next run takes the torch path again."""
    source = getattr(classifier, "source", None)
    export = Path(path)
    if source is None or export.parent != storage.cache_folder("onnx"):
        return False
    if source_stamp(source) != getattr(classifier, "source_stamp", None):
        return False  # the files changed since the model was loaded
    key = index_key(source)
    if key is None:
        return False
    entry = {
        "format": INDEX_FORMAT,
        "source": os.fspath(source),
        "onnx": export.name,
        "size": export.stat().st_size,
        "difference": difference,
        "versions": runtime_versions(),
        "card": classifier.card.to_dict(),
    }
    target = index_folder() / f"{key}.json"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entry, default=str), encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        log.warning("could not write the ONNX export index %s: %s", target, exc)
        return False
    return True
