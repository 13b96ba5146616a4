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
import torch
from test_quantize import AGREEMENT, held_out, trained

from imgrec.errors import ConfigError
from imgrec.inference import openvino as ov_session
from imgrec.models.card import Preprocessing

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
    assert "on a probe of flat and noise images" in capfd.readouterr().err  # no calibration


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


# --- a network that bf16 breaks: large folded weights cancelling a large bias ----------------
PRE = Preprocessing(input_size=32, resize_size=32, crop="none")
BLACK = -PRE.mean[0] / PRE.std[0]  # the red channel of a black pixel: -2.118, bf16 -2.125


def _cancelling_conv(channels: int) -> torch.nn.Conv2d:
    """Output channel 0 is 0 on black (fp32) but about 3 with bf16-rounded inputs; the others
    pass their input channel through (the digit's signal)."""
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[0, 0] = -50.0
        conv.bias[0] = 50.0 * 9 * BLACK
        for c in range(1, channels):
            conv.weight[c, c, 1, 1] = 1.0
    return conv


class _StemNet(torch.nn.Module):
    """The cancellation in the first convolution (as in the fine-tuned mnist5k Lite0)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _cancelling_conv(3)
        self.fc = torch.nn.Linear(3, 3)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[10.0, 0, 0], [0, 1, 0], [0, 0, 1]]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.stem(x)).mean((2, 3)))


class _ResidualNet(_StemNet):
    """The same cancellation at the end of a residual branch, which bf16 cannot keep fp32."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.stem.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.stem.bias.zero_()
        self.branch = _cancelling_conv(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.fc(torch.relu(h + self.branch(h) - BLACK).mean((2, 3)))


def _export(net: torch.nn.Module, path: Path) -> Path:
    torch.onnx.export(net.eval(), (torch.zeros(1, 3, 32, 32),), str(path), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "b"}, "logits": {0: "b"}},
                      dynamo=False)  # fmt: skip
    return path


def _digits(folder: Path, n: int = 12) -> np.ndarray:
    """``n`` white strokes on black (PNG files in ``folder``), preprocessed."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir()
    images = []
    for i in range(n):
        im = np.zeros((32, 32, 3), np.uint8)
        y, x = rng.integers(4, 20, 2)
        im[y : y + 10, x : x + int(rng.integers(2, 8))] = 255
        Image.fromarray(im).save(folder / f"{i:02d}.png")
        images.append(im)
    x = (np.stack(images) / 255.0 - np.array(PRE.mean)) / np.array(PRE.std)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), np.float32)


@needs_bf16
def test_bf16_keeps_the_input_convolutions_fp32(tmp_path: Path) -> None:
    from imgrec.inference.onnx import cpu_session
    from imgrec.quantize import BF16_PROBE_TOLERANCE, bf16_model, session_logits

    fp32 = _export(_StemNet(), tmp_path / "stem.onnx")
    x = _digits(tmp_path / "calib")
    ref = session_logits(cpu_session(fp32, 1), x)
    spread = ref.max() - ref.min()
    plain = session_logits(ov_session.openvino_session(fp32, threads=1), x)  # all bf16
    assert np.abs(plain - ref).max() > BF16_PROBE_TOLERANCE * spread  # it does break bf16
    for calibration in (None, tmp_path / "calib"):
        path = bf16_model(fp32, calibration, PRE, cache_dir=tmp_path / "cache")
        assert path.suffix == ".xml" and path.parent == tmp_path / "cache"
        got = session_logits(ov_session.openvino_session(path, threads=1), x)
        assert np.abs(got - ref).max() < 0.02 * spread
        assert (got.argmax(1) == ref.argmax(1)).all()


@needs_bf16
def test_bf16_refuses_a_model_it_cannot_keep_accurate(tmp_path: Path) -> None:
    from imgrec.errors import ModelError
    from imgrec.quantize import bf16_model

    fp32 = _export(_ResidualNet(), tmp_path / "residual.onnx")
    assert ov_session.input_convolutions(fp32, 8) == ["/stem/Conv/WithoutBiases"]  # not the branch
    _digits(tmp_path / "calib")
    for calibration in (None, tmp_path / "calib"):  # the probe and the images both see it
        with pytest.raises(ModelError, match="even with the first 1 conv") as err:
            bf16_model(fp32, calibration, PRE, cache_dir=tmp_path / "cache")
        assert err.value.code == "bf16_inaccurate" and "fp32" in err.value.hint
