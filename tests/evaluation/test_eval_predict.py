"""predict(): files, folders, globs, s3 prefixes, bad files in place, --save-dir drawings,
ONNX Runtime equal to PyTorch, and the CLI's JSON lines and exit code."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from eval_fixtures import write_color_images, write_tiny_model

from imgrec.data.sources import expand_sources, saved_name
from imgrec.errors import NotFoundError
from imgrec.inference.runners import ONNX_ATOL, make_runner
from imgrec.predictor import load_model
from imgrec.tasks.classify.predict import predict

CLASSES = ["red", "green", "blue"]


@pytest.fixture(autouse=True)
def _onnx_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("IMGREC_CACHE", str(tmp_path_factory.getbasetemp() / "imgrec-cache"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("pm") / "model", CLASSES, seed=1)


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos dir"
    write_color_images(root / "sub", "red", 3, seed=1, size=40)
    write_color_images(root, "blue", 2, seed=2, size=40)
    (root / "notes.txt").write_text("not an image")
    (root / "broken.jpg").write_bytes(b"%PDF-1.7 not a jpeg")
    return root


def test_expand_files_folders_globs_and_missing(photos):
    items = expand_sources(
        [
            photos / "blue 000.png",
            photos,
            str(photos / "**" / "red*.png"),
            str(photos / "nope.png"),
            str(photos / "*.gif"),
        ]
    )
    texts = [i if isinstance(i, str) else f"error:{i.code}" for i in items]
    assert texts[0] == str(photos / "blue 000.png")
    listed = [Path(t).name for t in texts[1:6]]  # folder: images only, recursive, sorted
    assert listed == ["blue 000.png", "blue 001.png", "broken.jpg", "red 000.png", "red 001.png"]
    assert [Path(t).name for t in texts[7:10]] == ["red 000.png", "red 001.png", "red 002.png"]
    assert texts[-2:] == ["error:not_found", "error:not_found"]
    (photos / "empty").mkdir()
    [empty] = expand_sources([photos / "empty"])
    assert isinstance(empty, NotFoundError) and "no images" in empty.message


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_predict_matches_classifier_and_keeps_order(photos, model_dir, runtime):
    sources = [str(photos), str(photos / "missing.jpg"), str(photos / "sub" / "*.png")]
    records = list(predict(sources, model=str(model_dir), top_k=2, batch_size=2, runtime=runtime))
    expected = [
        s if isinstance(s, str) else getattr(s, "source", "") for s in expand_sources(sources)
    ]
    assert [r["source"] for r in records] == expected
    errors = {Path(r["source"]).name: r["error"]["code"] for r in records if "error" in r}
    assert errors == {"broken.jpg": "unsupported_media_type", "missing.jpg": "not_found"}
    clf = load_model(str(model_dir))
    for r in records:
        if "predictions" not in r:
            continue
        assert len(r["predictions"]) == 2 and {p["label"] for p in r["predictions"]} <= set(CLASSES)
        [ref] = clf.predict(r["source"], top_k=2)  # PNGs: no draft, so the same pixels
        assert [p["score"] for p in r["predictions"]] == pytest.approx(ref.scores, abs=1e-5)
        # float32 scores may tie at 0.0 or 1.0: the order is the logits' (ties by class index)
        logits = clf.predict_batch(clf.preprocess(r["source"])[None])[0].double().numpy()
        order = np.argsort(-logits, kind="stable")[:2]
        assert [p["label"] for p in r["predictions"]] == [CLASSES[i] for i in order]


def test_save_dir_draws_label_and_names_are_safe(photos, model_dir, tmp_path):
    out = tmp_path / "out"
    records = list(predict([photos / "sub"], model=model_dir, top_k=1, save_dir=out))
    saved = sorted(out.iterdir())
    assert [Path(r["saved"]) for r in records] == saved and len(saved) == 3
    for r in records:
        original = np.asarray(Image.open(r["source"]).convert("RGB"), dtype=np.int16)
        drawn = np.asarray(Image.open(r["saved"]).convert("RGB"), dtype=np.int16)
        assert drawn.shape == original.shape
        # the banner in the top-left corner holds near-white text on black; the rest is the photo
        assert (drawn[:8, :20] < 40).all(axis=-1).sum() > 20
        assert (drawn[:10, :30] > 200).all(axis=-1).sum() > 3
        # away from the banner the photo is kept (noisy pixels: compare the region's colour)
        corner = np.abs(
            drawn[-15:, -15:].mean(axis=(0, 1)) - original[-15:, -15:].mean(axis=(0, 1))
        )
        assert (corner < 8).all()
    for hostile in [
        "../../etc/passwd",
        "/abs/x.jpg",
        "a\x00b.png",
        "C:\\evil\\..\\x.jpg",
        "..",
        "猫 cat.jpg",
    ]:
        name = saved_name(7, hostile)
        assert "/" not in name and "\\" not in name and "\x00" not in name
        assert name.startswith("00007_") and name.endswith(".jpg") and ".." not in name


@pytest.mark.slow
def test_onnx_runtime_equals_pytorch_on_real_photo(tmp_path):
    """The default pretrained model: ONNX logits within 1e-4 of PyTorch, and chelsea is a cat."""
    from skimage import data

    photo = tmp_path / "chelsea.jpg"
    Image.fromarray(data.chelsea()).save(photo, quality=95)
    big = tmp_path / "astronaut.jpg"
    Image.fromarray(data.astronaut()).resize((1600, 1200)).save(big, quality=90)
    clf = load_model("efficientnet_lite0")
    x = torch.stack([clf.preprocess(Image.open(p).convert("RGB")) for p in (photo, big)])
    onnx_logits = make_runner(clf, "onnx")(x)
    torch_logits = clf.predict_batch(x).float()
    assert float((onnx_logits - torch_logits).abs().max()) <= ONNX_ATOL
    [record, rec_big] = list(predict([photo, big], top_k=3))
    assert record["predictions"][0]["label"] in {"Egyptian cat", "tabby", "tiger cat"}
    # the reduced (draft) decode of the 1600x1200 JPEG keeps the full-decode top label
    [full] = clf.predict(str(big), top_k=1)
    assert rec_big["predictions"][0]["label"] == full.labels[0]


@pytest.mark.s3
def test_predict_s3_prefix(s3_server, make_bucket, model_dir, tmp_path):
    from imgrec import storage

    bucket = make_bucket()
    for p in write_color_images(tmp_path, "green", 2, seed=3):
        storage.write_bytes(f"s3://{bucket}/in/{p.name}", p.read_bytes())
    records = list(predict([f"s3://{bucket}/in"], model=model_dir, top_k=1, runtime="torch"))
    assert [r["source"] for r in records] == [
        f"s3://{bucket}/in/green 000.png",
        f"s3://{bucket}/in/green 001.png",
    ]
    assert all("predictions" in r for r in records)
