"""Preprocess: the shrunken images give the trainer exactly the pixels of the originals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgrec.engine.batches import decode_to_cache
from imgrec.mlops.ingest import ingest
from imgrec.mlops.preprocess import preprocess
from imgrec.models import ARCHITECTURES


def _photos(root: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label in ("x", "y"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                h, w = (90, 130) if i % 2 else (140, 100)
                arr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
                fmt = "JPEG" if i % 2 else "PNG"
                Image.fromarray(arr).save(folder / f"{i}.{fmt.lower()}", format=fmt)
    # one image already small enough: referenced, not copied
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
        root / "train" / "x" / "small.png"
    )
    return root


@pytest.mark.parametrize(("model", "size"), [("small_resnet", 32), ("resnet18", 48)])
def test_preprocessed_pixels_equal_the_originals(tmp_path: Path, model: str, size: int) -> None:
    manifest = ingest(str(_photos(tmp_path / "photos")))
    out = tmp_path / "pre"
    result = preprocess(manifest, str(out), model=model, img_size=size, epochs=1)
    assert result.config["model"] == model and result.config["img_size"] == size
    assert "device" not in result.config
    assert result.stats["resized"] == 12 and result.stats["kept"] == 1
    assert result.stats["bytes_after"] < result.stats["bytes_before"]
    with open(result.data_csv) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 13
    new_paths = [r["path"] if r["path"].startswith("/") else str(out / r["path"]) for r in rows]
    by_path = {r["path"]: r for r in manifest.rows}
    originals = [r["path"] for r in manifest.rows]
    assert [by_path[p]["label"] for p in originals] == [r["label"] for r in rows]
    pre = ARCHITECTURES.get(model).default_preprocessing(size)
    a = decode_to_cache(originals, pre, quiet=True)
    b = decode_to_cache(new_paths, pre, quiet=True)
    assert a.shape == (13, 3, size, size)
    # The trainer's one-step resize+crop of an original samples at the same positions as its
    # crop of the stored resized copy, up to float rounding: at most one grey level apart.
    diff = (a.int() - b.int()).abs()
    assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 0.01
    saved = json.loads((out / "train_config.json").read_text())
    assert saved == result.config


def test_preprocess_writes_shards_to_s3_that_the_train_step_streams(
    tmp_path: Path, make_bucket
) -> None:
    from imgrec.data.images import decode_image
    from imgrec.data.shards import read_index, read_shard
    from imgrec.tasks.classify.pipeline import train_inputs

    manifest = ingest(str(_photos(tmp_path / "photos")))
    where = f"s3://{make_bucket()}/pre/shards"
    result = preprocess(manifest, str(tmp_path / "pre"), model="small_resnet", img_size=32,
                        epochs=1, shards=where, shard_samples=4)  # fmt: skip
    assert result.config["shards"] == where and result.stats["resized"] == 0
    index = read_index(where)
    assert index.counts() == {"train": 7, "val": 6} and len(index.shards("train")) == 2
    assert index.classes == ["x", "y"] and index.fingerprint == manifest.fingerprint
    assert index.image_stats["n_sampled"] == 7
    images = [decode_image(b) for s in index.shards("train") for _, b, _ in read_shard(s.uri)]
    # the shards hold the images at the training geometry (the 20 px one unchanged)
    assert sorted(min(im.size) for im in images) == [20] + [32] * 6
    data, config = train_inputs(str(tmp_path / "pre"), result.config)
    assert data == where and "shards" not in config
