"""New labelled data beside the base dataset (the retraining pipeline's ``new_data_uri``).

The new images (e.g. ``imgrec label import`` output) are ingested on their own and split per
class with a seeded shuffle: ``holdout_fraction`` of them become the manifest's ``test`` split
-- the held-out slice the gate scores both models on -- and the rest join ``train``. The base
dataset's ``val`` split stays untouched, so the gate's base comparison is on the same images
as before::

    meta = add_new_data("out/manifest", "data/new-camera", holdout_fraction=0.3, seed=0)
    meta["new_data"]     # {"source", "train": 350, "holdout": 150, "classes": [...]}

Classification only; the new classes must be among the base dataset's classes (a new class
needs a new model, not a retraining).
"""

from __future__ import annotations

import json
from typing import Any

from imgrec import storage
from imgrec.errors import ConfigError, DatasetError

HOLDOUT_SPLIT = "test"  # the held-out slice of the new data


def add_new_data(
    manifest_dir: str, new_uri: str, *, holdout_fraction: float = 0.3, seed: int = 0
) -> dict[str, Any]:
    """Merge ``new_uri`` into the manifest at ``manifest_dir``; returns the new meta."""
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
    base.rows = sorted(base.rows + rows, key=lambda r: (r["split"], r["label"], r["path"]))
    base.notes = [
        *base.notes,
        f"new data {new.source}: {sum(r['split'] == 'train' for r in rows)} images added to "
        f"train, {sum(r['split'] == HOLDOUT_SPLIT for r in rows)} held out as "
        f"{HOLDOUT_SPLIT!r} for the gate",
    ]
    paths = base.write(manifest_dir)
    meta = base.meta()
    meta["new_data"] = {
        "source": new.source,
        "fingerprint": new.fingerprint,
        "train": sum(r["split"] == "train" for r in rows),
        "holdout": sum(r["split"] == HOLDOUT_SPLIT for r in rows),
        "holdout_split": HOLDOUT_SPLIT,
        "classes": new.classes,
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
