"""``imgrec predict --precision int8``: batch prediction on the static-quantized model agrees
with fp32 prediction on held-out images, fails clearly without calibration images or on the
torch runtime, and leaves fp32 prediction as it was.

The model and images are the stripes classifier of ``test_quantize.py`` (trained in seconds);
a blank calibration set gives an int8 model whose agreement is measured below the threshold,
so the agreement assertion can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_quantize import AGREEMENT, SIZE, dataset, trained, write_images

from imgrec.errors import ConfigError, DatasetError, UnknownNameError
from imgrec.inference.onnx import cache_path
from imgrec.inference.runners import make_runner
from imgrec.quantize import QuantizeSettings, quantize_onnx
from imgrec.tasks.classify.predict import predict

__all__ = ["trained"]  # the module-scoped fixture, shared with test_quantize.py


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IMGREC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    """48 held-out images (neither training, seed 1, nor calibration, seed 2)."""
    return write_images(tmp_path / "held out", dataset(48, seed=3)[0])


def _top1(records: list[dict[str, object]]) -> list[str]:
    return [r["predictions"][0]["label"] for r in records]  # type: ignore[index]


def test_int8_predict_agrees_with_fp32_predict(trained: Path, cache: Path, images: Path) -> None:
    from imgrec.predictor import load_model

    clf = load_model(str(trained / "model"))
    fp32 = list(predict(images, model=clf, runtime="onnx", top_k=2, workers=2))
    int8 = list(
        predict(
            images,
            model=clf,
            top_k=2,
            workers=2,
            precision="int8",
            calibration=trained / "calib",
        )
    )
    assert [r["source"] for r in int8] == [r["source"] for r in fp32]
    agree = np.mean([a == b for a, b in zip(_top1(fp32), _top1(int8), strict=True)])
    assert agree >= AGREEMENT, agree
    # Really int8: scores close to fp32's but not equal (an fp32 model would match bit for bit).
    diffs = [
        abs(a["predictions"][0]["score"] - b["predictions"][0]["score"])  # type: ignore[index]
        for a, b in zip(fp32, int8, strict=True)
    ]
    assert 0 < max(diffs) < 0.3
    quantized = sorted(cache_path(clf).parent.glob("*-int8-*.onnx"))
    assert len(quantized) == 1  # calibrated once, cached beside the fp32 export

    # The runner is the int8 file's, reused for the same calibration set.
    run = make_runner(clf, "onnx", parallel=True, precision="int8", calibration=trained / "calib")
    again = make_runner(clf, "auto", parallel=True, precision="int8", calibration=trained / "calib")
    assert run is make_runner(
        clf, "onnx", parallel=True, precision="int8", calibration=trained / "calib"
    )
    assert again is not run  # another key, same cached file: nothing recalibrated
    assert len(sorted(cache_path(clf).parent.glob("*-int8-*.onnx"))) == 1


def test_broken_quantization_fails_the_agreement_threshold(
    trained: Path, cache: Path, images: Path
) -> None:
    """An int8 model calibrated on blank images (wrong ranges) falls below the threshold used
    above, measured through the same prediction path; so the agreement test can fail."""
    import onnxruntime as ort

    from imgrec.predictor import load_model
    from imgrec.tasks.classify.predict import _loader

    clf = load_model(str(trained / "model"))
    fp32 = list(predict(images, model=clf, runtime="onnx", top_k=1, workers=2))
    blank = write_images(cache.parent / "blank", np.full((16, SIZE, SIZE, 3), 128, np.uint8))
    # only the stem in fp32: with the default three this small network still agrees on 96%
    measure = QuantizeSettings(method="minmax", keep_fp32=("first_conv",), min_agreement=0.0)
    path = cache_path(clf)  # written by the fp32 predict above
    bad = quantize_onnx(path, blank, clf.card.preprocessing, settings=measure, progress=False)
    session = ort.InferenceSession(str(bad.path), providers=["CPUExecutionProvider"])
    load = _loader(clf, draft=True, keep_image=False)
    files = [r["source"] for r in fp32]
    x = np.stack([load(str(f))[0] for f in files])  # float32 (3, H, W) arrays
    labels = session.run(["logits"], {"input": x})[0].argmax(1)
    agree = np.mean([clf.classes[i] == t for i, t in zip(labels, _top1(fp32), strict=True)])
    assert agree < AGREEMENT, agree


def test_int8_without_calibration_or_on_torch_is_a_typed_error(
    trained: Path, cache: Path, images: Path
) -> None:
    model = str(trained / "model")
    with pytest.raises(ConfigError, match="--calibration DIR") as err:
        next(predict(images, model=model, precision="int8"))
    assert err.value.code == "calibration_required"
    with pytest.raises(ConfigError, match="onnx runtime") as err:
        next(predict(images, model=model, runtime="torch", precision="int8", calibration=images))
    assert err.value.code == "precision_unsupported" and "fp32" in err.value.hint
    with pytest.raises(UnknownNameError, match="int8"):
        next(predict(images, model=model, precision="int9", calibration=images))
    assert not cache.exists()  # refused before exporting anything
    from imgrec.predictor import load_model

    clf = load_model(model)
    with pytest.raises(ConfigError, match="onnx runtime"):
        make_runner(clf, "torch", precision="int8", calibration=images)
    empty = cache.parent / "empty calibration"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no image files") as bad:
        next(predict(images, model=clf, precision="int8", calibration=empty))
    assert bad.value.code == "invalid_calibration_set"


def test_cli_predict_int8(trained: Path, tmp_path: Path, images: Path) -> None:
    imgrec = str(Path(sys.executable).with_name("imgrec"))
    env = {**os.environ, "IMGREC_CACHE": str(tmp_path / "cache")}
    base = [imgrec, "predict", str(images), "--model", str(trained / "model"), "--json", "-k", "1"]
    refused = subprocess.run(
        [*base, "--precision", "int8"], capture_output=True, text=True, env=env, timeout=120
    )
    assert refused.returncode != 0
    assert "error[calibration_required]" in refused.stderr
    done = subprocess.run(
        [*base, "--precision", "int8", "--calibration", str(trained / "calib")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == 48 and all("predictions" in r for r in records)
    assert "ONNX Runtime int8 model" in done.stderr
    helped = subprocess.run([imgrec, "predict", "--help"], capture_output=True, text=True, env=env)
    assert "--precision" in helped.stdout and "--calibration" in helped.stdout
