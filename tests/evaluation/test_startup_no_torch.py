"""Start-up without torch (issue 14 item 5): once a model's ONNX export has passed its check
against PyTorch it is in the export index, and ``imgrec predict`` and ``imgrec serve`` then
reach their first prediction / ``ready on`` without importing torch (checked on the real
commands' ``-X importtime`` output); what they answer equals the torch path's answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from eval_fixtures import write_color_images, write_tiny_model
from scipy.special import softmax

from imgrec.inference.export_index import CachedExport, find_export, index_folder, index_key
from imgrec.predictor import load_model
from imgrec.tasks.classify.predict import predict

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["red", "green", "blue"]
HEAVY = ("torch", "torchvision", "timm")


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("IMGREC_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("startup") / "model", CLASSES, seed=4)


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "IMGREC_CACHE": str(cache),
            "PYTHONUNBUFFERED": "1"}  # fmt: skip


def _imported(importtime: str) -> set[str]:
    """Top-level packages named in ``-X importtime`` lines."""
    names = set()
    for line in importtime.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_predict_on_an_indexed_export_imports_no_torch(model_dir, tmp_path, cache):
    [image] = write_color_images(tmp_path / "imgs", "green", 1, seed=1)
    assert find_export(model_dir) is None  # a cold cache: the first run takes the torch path
    [first] = list(predict([image], model=str(model_dir), top_k=3))  # exports, checks, indexes
    found = find_export(model_dir)
    assert found is not None and found.path.exists() and found.classes == CLASSES
    assert len(list(index_folder().glob("*.json"))) == 1

    cmd = [sys.executable, "-X", "importtime", "-m", "imgrec", "predict", str(image), "-m",
           str(model_dir), "-k", "3", "--json"]  # fmt: skip
    done = subprocess.run(cmd, env=_env(cache), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = _imported(done.stderr)
    assert "onnxruntime" in imported and "imgrec" in imported  # the parse reads real lines
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    assert "exporting" not in done.stderr
    assert json.loads(done.stdout) == json.loads(json.dumps(first))  # the same numbers

    # a changed model directory is another key: no stale export is found for it
    weights = model_dir / "weights.safetensors"
    blob = weights.read_bytes()
    try:
        weights.write_bytes(blob[:-4] + bytes(4))
        assert index_key(model_dir) is not None and find_export(model_dir) is None
    finally:
        weights.write_bytes(blob)
    assert find_export(model_dir) is not None


def test_predict_scores_are_the_softmax_of_the_logits(model_dir, tmp_path, cache):
    """float64 softmax rounded to float32, against an independent reference (scipy), and the
    top-k order; the torch path and the index path give the same records."""
    images = write_color_images(tmp_path / "imgs", "red", 5, seed=2)
    clf = load_model(str(model_dir))
    torch_path = list(predict(images, model=clf, top_k=3, runtime="torch"))
    via_index = list(predict(images, model=str(model_dir), top_k=3))  # exports, indexes
    again = list(predict(images, model=str(model_dir), top_k=3))  # found in the index
    assert find_export(model_dir) is not None and again == via_index
    import torch

    from imgrec.data.images import load_image
    from imgrec.data.pixels import draft_size, normalize_lookup, normalize_table, resize_image
    from imgrec.inference.runners import make_runner

    pre = clf.card.preprocessing
    run = make_runner(clf, "onnx")
    for path, record, torch_record in zip(images, again, torch_path, strict=True):
        image = resize_image(load_image(path, draft=draft_size(pre)), pre)
        x = normalize_lookup(np.asarray(image), normalize_table(pre))[None]
        logits = run(torch.from_numpy(x)).numpy()[0]
        want = softmax(logits.astype(np.float64))
        order = np.argsort(-want, kind="stable")[:3]
        assert [p["label"] for p in record["predictions"]] == [CLASSES[i] for i in order]
        got = [p["score"] for p in record["predictions"]]
        assert got == pytest.approx(want[order].tolist(), rel=1e-6, abs=1e-7)
        assert [p["label"] for p in torch_record["predictions"]] == [CLASSES[i] for i in order]


def test_serve_on_an_indexed_export_is_ready_without_torch(model_dir, cache):
    from imgrec.serving.served_model import load_runtime

    served = load_runtime(str(model_dir))  # the torch path: exports, checks, indexes
    assert find_export(model_dir) is not None
    pixels = np.random.default_rng(0).integers(0, 256, (2, 3, 16, 16), dtype=np.uint8)
    want = served.run(pixels)
    again = load_runtime(str(model_dir))  # found in the index: the card and the export alone
    assert isinstance(again.classifier, CachedExport) and again.classes == CLASSES
    got = again.run(pixels)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])

    cmd = [sys.executable, "-X", "importtime", "-m", "imgrec", "serve", str(model_dir),
           "--port", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=_env(cache), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            lines.append(line)
            if "ready on " in line or time.monotonic() > deadline:
                break
    finally:
        proc.kill()
        proc.wait(timeout=10)
    text = "".join(lines)
    assert "ready on " in text, text[-2000:]
    imported = _imported(text)
    assert "kserve" in imported and "onnxruntime" in imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    assert "exporting" not in text
