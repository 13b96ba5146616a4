"""``--precision bf16`` (OpenVINO on CPUs with native bf16): batch prediction and the serving
backend agree with fp32, the check against fp32 runs on the calibration images when given,
and bf16 is refused clearly where it cannot run (no native bf16, an exported file).

The model and images are the stripes classifier of ``test_quantize.py`` (trained in seconds).
Tests that run bf16 need a CPU with AMX or AVX512-BF16 (the CI and development machines have
them); the refusals run everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_quantize import AGREEMENT, held_out, trained

from imgrec.errors import ConfigError
from imgrec.inference import openvino as ov_session

__all__ = ["trained"]  # the module-scoped fixture, shared with test_quantize.py


def _native_bf16() -> bool:
    try:
        ov_session.require_bf16()
    except ConfigError:
        return False
    return True


needs_bf16 = pytest.mark.skipif(not _native_bf16(), reason="this CPU has no native bf16")


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IMGREC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@needs_bf16
def test_bf16_predict_and_backend_agree_with_fp32(
    trained: Path, cache: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from imgrec.predictor import load_model
    from imgrec.serving.backends import OnnxBackend
    from imgrec.tasks.classify.predict import predict

    clf = load_model(str(trained / "model"))
    x, labels = held_out(clf.card.preprocessing)
    fp32 = OnnxBackend(clf, threads=1)
    bf16 = OnnxBackend(clf, threads=1, precision="bf16", calibration=str(trained / "calib"))
    assert "agrees with fp32 on" in capfd.readouterr().err  # checked on the 32 images
    ref, emb = fp32.run(x)
    got, got_emb = bf16.run(x)
    assert got.shape == ref.shape and got_emb.shape == emb.shape
    assert (got.argmax(1) == ref.argmax(1)).mean() >= AGREEMENT
    assert (got.argmax(1) == labels).mean() >= (ref.argmax(1) == labels).mean() - 0.02
    assert np.abs(got - ref).max() > 0  # bf16 rounding happened: not an fp32 session

    images = [str(p) for p in sorted((trained / "calib").iterdir())][:12]
    records = list(predict(images, model=clf, top_k=1, workers=2, precision="bf16"))
    expected = list(predict(images, model=clf, top_k=1, workers=2, runtime="onnx"))
    same = [
        a["predictions"][0]["label"] == b["predictions"][0]["label"]
        for a, b in zip(records, expected, strict=True)
    ]
    assert np.mean(same) >= AGREEMENT
    assert "noise probe" in capfd.readouterr().err  # no calibration: the probe check ran


class _CoreWithout:
    """The real OpenVINO core, reporting a CPU without bf16 (an AVX2-only laptop)."""

    def __init__(self, core: Any) -> None:
        self.core = core

    def get_property(self, device: str, name: str) -> Any:
        if name == "OPTIMIZATION_CAPABILITIES":
            return ["FP32", "INT8", "EXPORT_IMPORT"]
        return self.core.get_property(device, name)


def test_bf16_is_refused_without_native_bf16(
    trained: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgrec.predictor import load_model
    from imgrec.tasks.classify.predict import predict

    real = ov_session._core()
    monkeypatch.setattr(ov_session, "_core", lambda: _CoreWithout(real))
    clf = load_model(str(trained / "model"))
    with pytest.raises(ConfigError, match="native bf16") as err:
        list(predict([str(trained / "calib")], model=clf, precision="bf16"))
    assert err.value.code == "precision_unsupported" and "fp32" in err.value.hint


def test_bf16_is_not_an_export_format(trained: Path, cache: Path, tmp_path: Path) -> None:
    from imgrec.serving.export import export_model

    with pytest.raises(ConfigError, match="at run time") as err:
        export_model(str(trained / "model"), "onnx", tmp_path / "m.onnx", precision="bf16")
    assert err.value.code == "precision_unsupported"
    assert not (tmp_path / "m.onnx").exists()
