"""int8 keeps the convolutions nearest the input in fp32 (``QuantizeSettings.keep_fp32`` role
``input_convs``): a network with large weights cancelling a large bias in its second
convolution (what fine-tuning on black backgrounds does to EfficientNet-Lite0's first block,
BENCHMARKS.md "INT8 inference") breaks when only the first convolution stays fp32, and agrees
with fp32 when the first three do, while the layers after them are still quantized (both
without a weight correction; the measured bias correction, the default, repairs this toy
network's cancellation even with only the first convolution in fp32).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from test_bf16 import PRE, _cancelling_conv, _digits, _export

from imgrec.quantize import INT8_FP32_CONVOLUTIONS, QuantizeSettings, quantize_onnx


def _identity(channels: int) -> torch.nn.Conv2d:
    conv = torch.nn.Conv2d(channels, channels, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
        conv.bias.zero_()
    return conv


class _SecondConvNet(torch.nn.Module):
    """identity -> cancelling 3x3 -> identity -> an ordinary 3x3 convolution -> mean -> fc."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem, self.cancel, self.mix = _identity(3), _cancelling_conv(3), _identity(3)
        self.body = torch.nn.Conv2d(3, 3, 3, padding=1)
        with torch.no_grad():
            self.body.weight.mul_(0.2)
            self.body.weight[:, :, 1, 1] += torch.eye(3)
        self.fc = torch.nn.Linear(3, 3)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[10.0, 0, 0], [0, 1, 0], [0, 0, 1]]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mix(torch.relu(self.cancel(self.stem(x))))
        return self.fc(torch.relu(self.body(h)).mean((2, 3)))


def _conv_inputs_quantized(path: Path) -> list[bool]:
    """For each Conv of the ONNX file, in order: whether its input comes from a DequantizeLinear."""
    import onnx

    graph = onnx.load(str(path)).graph
    producers = {o: n.op_type for n in graph.node for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    return [producers.get(n.input[0]) == "DequantizeLinear" for n in convs]


def test_int8_keeps_the_input_convolutions_fp32(tmp_path: Path) -> None:
    from imgrec.inference.onnx import cpu_session
    from imgrec.quantize import session_logits

    fp32 = _export(_SecondConvNet(), tmp_path / "net.onnx")
    x = _digits(tmp_path / "calib")
    ref = session_logits(cpu_session(fp32, 1), x)
    spread = float(ref.max() - ref.min())
    got = {}
    stem, default = ("first_conv", "head"), QuantizeSettings().keep_fp32
    # without a weight correction (the measured bias correction repairs this toy cancellation
    # on its own: a constant offset over the black background, see the last case)
    for name, keep, correction in (
        ("stem", stem, "none"),
        ("default", default, "none"),
        ("stem, measured bias correction", stem, "bias_measured"),
    ):
        settings = QuantizeSettings(keep_fp32=keep, min_agreement=0.0, weight_correction=correction)
        result = quantize_onnx(fp32, tmp_path / "calib", PRE, settings=settings, progress=False)
        got[name] = session_logits(cpu_session(result.path, 1), x)
        if name == "default":
            quantized = _conv_inputs_quantized(result.path)
            assert quantized == [False] * INT8_FP32_CONVOLUTIONS + [True]  # the body is int8
    assert np.abs(got["stem"] - ref).max() > 0.2 * spread  # int8 in the 2nd conv breaks it
    for name in ("default", "stem, measured bias correction"):
        assert np.abs(got[name] - ref).max() < 0.05 * spread
        assert (got[name].argmax(1) == ref.argmax(1)).all()
