"""New labelled data beside the base dataset (the retraining pipeline's ``new_data_uri``).

The new images (e.g. ``imgrec label import`` output) are ingested on their own and split per
class with a seeded shuffle: ``holdout_fraction`` of them become the manifest's ``test`` split
-- the held-out slice the gate scores both models on -- and the rest join ``train``. The base
dataset's ``val`` split stays untouched, so the gate's base comparison is on the same images
as before::

    meta = add_new_data("out/manifest", "data/new-camera", holdout_fraction=0.3, seed=0)
    meta["new_data"]     # {"source", "train": 350, "holdout": 150, "classes": [...], "mix"}

The training mix (``share``): 350 new images beside 4,000 base ones are 8 % of an epoch, and a
warm-started model learns them slowly (on mnist5k with the "new camera": 0.89 accuracy on
shifted digits after 3 epochs). With ``share`` > 0 an epoch keeps the base train size, and
``share`` of it is the new training images, each repeated; the rest is a seeded sample of the
base training images (replay, so the base classes are not forgotten). :func:`epoch_rows`
applies it to the rows the trainer reads (the preprocess step); the manifest itself, the
validation and the gate see every image once.

The augmentation (:data:`NEW_DATA_AUGMENT`, chosen by the preprocess step for a warm start
with new data): the "camera" preset (:class:`imgrec.data.augment.CameraShift`) turns part of
the replayed base images into what a changed camera might deliver, so the model sees the
shift on every class, not only on the few hundred labelled new images.

Classification only; the new classes must be among the base dataset's classes (a new class
needs a new model, not a retraining).
"""

from __future__ import annotations

import json
from typing import Any

from imgrec import storage
from imgrec.errors import ConfigError, DatasetError

HOLDOUT_SPLIT = "test"  # the held-out slice of the new data
NEW_TRAIN_LIST = "new_train.txt"  # content hashes of the new training images, one a line
NEW_DATA_SHARE = 0.5  # the new images' share of a training epoch (pipeline: new_data_share)
# The augmentation of a warm start on new data (``imgrec.mlops.steps.preprocess_step``):
# thicker/thinner strokes, rotations up to 30 degrees, blur (``imgrec.data.augment``), so the
# replayed base images look like a new camera's too (BENCHMARKS.md, the learning loop).
NEW_DATA_AUGMENT = "camera"


def training_mix(n_base: int, n_new: int, share: float) -> dict[str, int]:
    """One epoch's make-up: ``{"base": base images kept, "repeat": times each new image}``.

    ``share`` 0: every image once (base and new joined). Otherwise the epoch is as long as the
    base train split and about ``share`` of it is the new images (each at least once).
    """
    if not 0.0 <= share < 1.0:
        raise ConfigError(
            f"new_data_share must be in [0, 1), got {share}",
            hint="0.5: half of each training epoch is the new images; 0: each image once",
        )
    if share == 0 or n_new == 0:
        return {"base": n_base, "repeat": 1}
    repeat = max(1, round(share * n_base / n_new))
    return {"base": max(1, round((1 - share) * n_base)), "repeat": repeat}


def epoch_rows(
    rows: list[dict[str, Any]], manifest_dir: str, seed: int = 0
) -> tuple[list[dict[str, Any]], str]:
    """The manifest ``rows`` the trainer reads, with the new data's training mix applied
    (:func:`training_mix`, recorded by :func:`add_new_data`); returns them and a note ("" when
    the manifest has no new data, or its mix is every image once)."""
    import random

    meta_uri = storage.join(manifest_dir, "manifest.json")
    mix = json.loads(storage.read_text(meta_uri)).get("new_data", {}).get("mix")
    if not mix or (mix["repeat"] == 1 and mix["base"] >= mix["n_base"]):
        return rows, ""
    new = set(storage.read_text(storage.join(manifest_dir, NEW_TRAIN_LIST)).split())
    is_new = [r["split"] == "train" and r["sha256"] in new for r in rows]
    base = [i for i, (r, n) in enumerate(zip(rows, is_new, strict=True))
            if r["split"] == "train" and not n]  # fmt: skip
    kept = set(random.Random(seed).sample(base, min(len(base), mix["base"])))
    out = []
    for i, (r, n) in enumerate(zip(rows, is_new, strict=True)):
        if n:
            out += [r] * mix["repeat"]
        elif r["split"] != "train" or i in kept:
            out.append(r)
    note = (f"training mix: {len(kept)} of {len(base)} base training images and the "
            f"{sum(is_new)} new ones {mix['repeat']}x each per epoch")  # fmt: skip
    return out, note


def add_new_data(
    manifest_dir: str,
    new_uri: str,
    *,
    holdout_fraction: float = 0.3,
    seed: int = 0,
    share: float = NEW_DATA_SHARE,
) -> dict[str, Any]:
    """Merge ``new_uri`` into the manifest at ``manifest_dir``; returns the new meta.
    ``share``: the new images' share of each training epoch (:func:`training_mix`)."""
    from imgrec.mlops.ingest import ingest, read_manifest

    if not 0.0 < holdout_fraction < 1.0:
        raise ConfigError(
            f"new_holdout_fraction must be in (0, 1), got {holdout_fraction}",
            hint="0.3 keeps 30 % of the new images for the gate",
        )
    base = read_manifest(manifest_dir)
    if any(r["split"] == HOLDOUT_SPLIT for r in base.rows):
        raise DatasetError(
            f"the base dataset {base.source} has a {HOLDOUT_SPLIT!r} split; the held-out slice "
            "of the new data needs it",
            hint="move the base test images to val, or retrain without new_data_uri",
        )
    new = ingest(new_uri, val_fraction=holdout_fraction, seed=seed)
    unknown = sorted(set(new.classes) - set(base.classes))
    if unknown:
        raise DatasetError(
            f"the new data {new_uri} have classes the base dataset lacks: {unknown}",
            hint=f"known classes: {', '.join(base.classes)}; a new class needs a new model",
        )
    rows = [{**r, "split": HOLDOUT_SPLIT if r["split"] != "train" else "train"} for r in new.rows]
    n_base = sum(r["split"] == "train" and r["readable"] for r in base.rows)
    new_train = [r["sha256"] for r in rows if r["split"] == "train" and r["readable"]]
    mix = training_mix(n_base, len(new_train), share)
    base.rows = sorted(base.rows + rows, key=lambda r: (r["split"], r["label"], r["path"]))
    base.notes = [
        *base.notes,
        f"new data {new.source}: {sum(r['split'] == 'train' for r in rows)} images added to "
        f"train, {sum(r['split'] == HOLDOUT_SPLIT for r in rows)} held out as "
        f"{HOLDOUT_SPLIT!r} for the gate",
    ]
    paths = base.write(manifest_dir)
    storage.write_text(storage.join(manifest_dir, NEW_TRAIN_LIST), "\n".join(new_train) + "\n")
    meta = base.meta()
    meta["new_data"] = {
        "source": new.source,
        "fingerprint": new.fingerprint,
        "train": sum(r["split"] == "train" for r in rows),
        "holdout": sum(r["split"] == HOLDOUT_SPLIT for r in rows),
        "holdout_split": HOLDOUT_SPLIT,
        "classes": new.classes,
        "mix": {**mix, "n_base": n_base, "share": share},
    }
    storage.write_text(paths["meta"], json.dumps(meta, indent=1))
    return meta


def has_holdout(manifest_dir: str) -> bool:
    """Whether the manifest carries a held-out slice of new data (only a classification
    manifest can: new data is classification only, and other tasks' manifests differ)."""
    from imgrec.mlops.ingest import manifest_task, read_manifest

    if manifest_task(manifest_dir) != "classify":
        return False
    return any(r["split"] == HOLDOUT_SPLIT for r in read_manifest(manifest_dir).rows)
