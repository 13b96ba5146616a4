"""INT8 (static QDQ) inference: the quantized model agrees with fp32, is cached, fails clearly
without a usable calibration set, and a real server answers V1 with it.

The model is a small_resnet trained in a few seconds on generated stripe images (4 classes:
horizontal, vertical, diagonal, checkerboard), so fp32 predictions are confident and an int8
model with wrong ranges (calibrated on blank images) visibly loses agreement.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from serving_helpers import start_server, stop_server

from imgrec.errors import ConfigError, DatasetError, ModelError
from imgrec.inference.onnx import export_onnx
from imgrec.models.card import ModelCard, Preprocessing, save_model_dir
from imgrec.quantize import QuantizeSettings, quantize_onnx
from imgrec.serving.backends import OnnxBackend

CLASSES = ["horizontal", "vertical", "diagonal", "checker"]
SIZE = 32
AGREEMENT = 0.95  # int8 vs fp32 top-1 on held-out images: 1.0 measured; blank calibration 0.68


def stripes(label: int, rng: np.random.Generator) -> np.ndarray:
    """One ``uint8 (SIZE, SIZE, 3)`` image of class ``label``: random period, phase, colours."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    period, phase = rng.uniform(4, 10), rng.uniform(0, 2 * np.pi)
    coord = [yy, xx, (xx + yy) / np.sqrt(2), None][label]
    if coord is None:
        wave = np.sign(np.sin(2 * np.pi * xx / period + phase) * np.sin(2 * np.pi * yy / period))
    else:
        wave = np.sign(np.sin(2 * np.pi * coord / period + phase))
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    while np.abs(a - b).sum() < 150:  # keep the two colours apart
        b = rng.uniform(0, 255, 3)
    img = np.where(wave[..., None] > 0, a, b) + rng.normal(0, 12, (SIZE, SIZE, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def dataset(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASSES)
    return np.stack([stripes(int(y), rng) for y in labels]), labels


def write_images(folder: Path, images: np.ndarray, start: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images, start):
        Image.fromarray(img).save(folder / f"img {i:03d}.png")  # a space in the names
    return folder


def normalize(images: np.ndarray, pre: Preprocessing) -> np.ndarray:
    x = images.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    mean = np.asarray(pre.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray(
        (x - mean) / np.asarray(pre.std, dtype=np.float32).reshape(1, 3, 1, 1)
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A narrow small_resnet model dir trained to ~95% on the stripes (about 10 s, 1 thread)."""
    import torch

    from imgrec.models.architectures import build_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("int8")
    pre = Preprocessing(input_size=SIZE, resize_size=SIZE)
    images, labels = dataset(512, seed=1)
    x, y = torch.from_numpy(normalize(images, pre)), torch.from_numpy(labels)
    arch: dict[str, Any] = {"widths": [16, 32, 64], "stem_width": 16}
    net = build_model("small_resnet", num_classes=len(CLASSES), **arch)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for _ in range(80):
        idx = torch.randint(0, len(x), (32,))
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    torch.set_num_threads(threads)
    card = ModelCard(
        architecture="small_resnet", classes=CLASSES, preprocessing=pre, arch_kwargs=arch
    )
    save_model_dir(net, card, root / "model")
    write_images(root / "calib", dataset(32, seed=2)[0])
    return root


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("IMGREC_CACHE", str(tmp_path / "cache"))
    yield tmp_path / "cache"


def held_out(pre: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    images, labels = dataset(96, seed=3)  # neither training nor calibration images
    return normalize(images, pre), labels


def test_int8_agrees_with_fp32_and_is_cached(trained: Path, cache: Path) -> None:
    from imgrec.predictor import load_model

    clf = load_model(str(trained / "model"))
    x, labels = held_out(clf.card.preprocessing)
    fp32 = OnnxBackend(clf, threads=1)
    int8 = OnnxBackend(clf, threads=1, precision="int8", calibration=trained / "calib")
    assert int8.path != fp32.path and int8.path.parent == fp32.path.parent
    ref, got = fp32.run(x)[0], int8.run(x)[0]
    assert (ref.argmax(1) == labels).mean() >= 0.85  # the model learned the task
    assert (got.argmax(1) == ref.argmax(1)).mean() >= AGREEMENT
    # Close but not equal: a "quantized" model that is still fp32 would be identical.
    assert 0 < np.abs(got - ref).max() < 0.25 * np.abs(ref).max()
    graph_ops = _op_types(int8.path)
    assert {"QuantizeLinear", "DequantizeLinear"} <= graph_ops

    mtime = int8.path.stat().st_mtime_ns
    again = quantize_onnx(
        fp32.path, trained / "calib", clf.card.preprocessing, cache_dir=int8.path.parent
    )
    assert again.cached and again.path == int8.path and again.images == 0
    assert again.agreement >= AGREEMENT  # measured on the calibration images, kept in the stamp
    assert int8.path.stat().st_mtime_ns == mtime  # not recalibrated nor rewritten


def _op_types(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_blank_calibration_loses_agreement(trained: Path, tmp_path: Path) -> None:
    """The agreement threshold catches wrong activation ranges (so the test above can fail)."""
    from imgrec.predictor import load_model

    clf = load_model(str(trained / "model"))
    pre = clf.card.preprocessing
    fp32 = export_onnx(clf, tmp_path / "fp32.onnx")
    blank = write_images(tmp_path / "blank", np.full((16, SIZE, SIZE, 3), 128, np.uint8))
    measure = QuantizeSettings(method="minmax", min_agreement=0.0)  # blank images all agree
    result = quantize_onnx(fp32, blank, pre, settings=measure)
    x, _ = held_out(pre)
    ref = OnnxBackend(clf, threads=1, onnx_path=fp32).run(x)[0]
    bad = OnnxBackend(clf, threads=1, onnx_path=result.path).run(x)[0]
    assert (bad.argmax(1) == ref.argmax(1)).mean() < AGREEMENT


def test_int8_that_disagrees_with_fp32_is_refused(trained: Path, tmp_path: Path) -> None:
    """Below ``min_agreement`` on the calibration images, fresh or cached, int8 is refused."""
    from imgrec.predictor import load_model

    clf = load_model(str(trained / "model"))
    fp32 = export_onnx(clf, tmp_path / "fp32.onnx")
    strict = QuantizeSettings(method="minmax", min_agreement=1.01)  # nothing can pass
    for _ in range(2):
        with pytest.raises(ModelError, match=r"agrees with fp32 on only 100% of") as err:
            quantize_onnx(fp32, trained / "calib", clf.card.preprocessing, settings=strict)
        assert err.value.code == "int8_inaccurate" and "--precision fp32" in err.value.hint
    # The threshold is not part of the file's key: the same file passes a looser check.
    loose = QuantizeSettings(method="minmax", min_agreement=0.9)
    assert quantize_onnx(fp32, trained / "calib", clf.card.preprocessing, settings=loose).cached


def test_cache_key_follows_calibration_set_and_settings(trained: Path, tmp_path: Path) -> None:
    from imgrec.predictor import load_model

    clf = load_model(str(trained / "model"))
    pre = clf.card.preprocessing
    fp32 = export_onnx(clf, tmp_path / "fp32.onnx")
    calib = write_images(tmp_path / "calib", dataset(10, seed=4)[0])
    fast = QuantizeSettings(method="minmax")
    first = quantize_onnx(fp32, calib, pre, settings=fast, progress=False)
    assert not first.cached and first.images == 10
    write_images(tmp_path / "calib", dataset(1, seed=5)[0], start=10)  # one more image
    grown = quantize_onnx(fp32, calib, pre, settings=fast, progress=False)
    assert not grown.cached and grown.path != first.path and grown.images == 11
    other = quantize_onnx(
        fp32, calib, pre, settings=QuantizeSettings(method="minmax", per_channel=False)
    )
    assert other.path not in (first.path, grown.path)
    explicit = quantize_onnx(fp32, calib, pre, tmp_path / "out" / "m.onnx", settings=fast)
    assert not explicit.cached
    assert quantize_onnx(fp32, calib, pre, tmp_path / "out" / "m.onnx", settings=fast).cached


def test_missing_empty_or_small_calibration_sets_fail_clearly(
    trained: Path, tmp_path: Path
) -> None:
    from imgrec.predictor import load_model

    clf = load_model(str(trained / "model"))
    pre = clf.card.preprocessing
    fp32 = export_onnx(clf, tmp_path / "fp32.onnx")
    missing = tmp_path / "no such folder"
    with pytest.raises(DatasetError, match="does not exist") as err:
        quantize_onnx(fp32, missing, pre)
    assert err.value.code == "invalid_calibration_set" and "--calibration" in err.value.hint
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match="no image files") as err:
        quantize_onnx(fp32, tmp_path / "empty", pre)
    assert "empty" in err.value.message
    small = write_images(tmp_path / "small", dataset(3, seed=6)[0])
    for i in range(6):
        (small / f"broken {i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(DatasetError, match=r"only 3 usable .* 6 could not be decoded") as err:
        quantize_onnx(fp32, small, pre)
    assert "small" in err.value.message
    assert not list(tmp_path.glob("fp32-int8-*"))  # nothing half-written


def test_int8_needs_calibration_and_the_onnx_backend(trained: Path, cache: Path) -> None:
    from imgrec.serving.served_model import load_runtime

    with pytest.raises(ConfigError, match="--calibration DIR") as err:
        load_runtime(str(trained / "model"), precision="int8")
    assert err.value.code == "calibration_required"
    with pytest.raises(ConfigError, match="onnx backend"):
        load_runtime(str(trained / "model"), backend="torch", precision="int8", calibration="x")
    with pytest.raises(Exception, match="did you mean 'int8'"):
        load_runtime(str(trained / "model"), precision="int9", calibration="x")


def test_export_int8_onnx(trained: Path, cache: Path, tmp_path: Path) -> None:
    from imgrec.serving.export import export_model

    out = tmp_path / "exported int8.onnx"
    result = export_model(
        str(trained / "model"), "onnx", out, precision="int8", calibration=trained / "calib"
    ).to_dict()
    assert result["precision"] == "int8" and result["path"] == str(out) and out.exists()
    assert result["top1_agreement_with_fp32"] >= AGREEMENT
    with pytest.raises(ConfigError, match="--format onnx"):
        export_model(
            str(trained / "model"), "mar", tmp_path / "m", precision="int8", calibration="c"
        )


@pytest.mark.slow
def test_server_answers_v1_with_int8(trained: Path, tmp_path: Path) -> None:
    server = start_server(
        str(trained / "model"),
        tmp_path,
        options={"precision": "int8", "calibration": str(trained / "calib"), "threads": 1},
    )
    try:
        images, labels = dataset(8, seed=7)
        instances = []
        for img in images:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            instances.append({"image": {"b64": base64.b64encode(buf.getvalue()).decode()}})
        response = server.v1(instances)
        assert response.status_code == 200, response.text
        predicted = [p["labels"][0] for p in response.json()["predictions"]]
        assert sum(p == CLASSES[y] for p, y in zip(predicted, labels, strict=True)) >= 7
        log = server.log.read_text()
        assert "ONNX Runtime int8 model" in log, log[-2000:]
    finally:
        stop_server(server)
    assert os.path.exists(server.log)


@pytest.mark.slow
def test_cli_int8_options(trained: Path, tmp_path: Path) -> None:
    """``imgrec serve`` refuses int8 without images (before loading anything); ``imgrec export
    --precision int8`` writes the file and reports its agreement with fp32."""
    import json
    import subprocess
    import sys

    imgrec = str(Path(sys.executable).with_name("imgrec"))
    env = {**os.environ, "IMGREC_CACHE": str(tmp_path / "cache")}
    refused = subprocess.run(
        [imgrec, "serve", str(trained / "model"), "--precision", "int8"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "error[calibration_required]" in refused.stderr and "--calibration DIR" in refused.stderr
    out = tmp_path / "m int8.onnx"
    exported = subprocess.run(
        [imgrec, "export", str(trained / "model"), "--format", "onnx", "--out", str(out),
         "--precision", "int8", "--calibration", str(trained / "calib")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    result = json.loads(exported.stdout)
    assert result["precision"] == "int8" and out.exists()
    assert result["top1_agreement_with_fp32"] >= AGREEMENT
    assert "calibrating int8 (percentile): 32/32 images" in exported.stderr
