"""int8 weights rounded onto ONNX Runtime's grid before it quantizes them, biases corrected for
the rounding (:mod:`imgrec.int8_weights`, ``QuantizeSettings.weight_correction``).

- ONNX Runtime re-quantizes the on-grid weights to the very integers it would have chosen
  itself, and stores the same integers in the QDQ file as without any correction;
- the predicted mean shift of a convolution's output (dense, grouped, depthwise) is the one
  ONNX Runtime measures, and the corrected bias cancels it;
- a network whose classes are separated by less than the rounding shift of its quantized
  convolution (on an input with a large mean) loses its top-1 in int8 without the correction
  and keeps it with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from test_bf16 import PRE, _export

from imgrec.int8_weights import (
    WEIGHT_CORRECTIONS,
    Correction,
    output_shift,
    quantized_convs,
    round_onto_grid,
    tensor_means,
)
from imgrec.quantize import QuantizeSettings, quantize_onnx


def _weights(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.3, shape).astype(np.float32)
    w[1] = 0.0  # an all-zero output channel (ONNX Runtime's scale 1.0)
    w[2] *= 1e-3  # a tiny one
    return w


@pytest.mark.parametrize("per_channel", [True, False])
def test_on_grid_weights_requantize_to_the_same_integers(per_channel: bool) -> None:
    from onnxruntime.quantization.quant_utils import quantize_data

    w = _weights(0, (6, 4, 3, 3))
    integers, scales = round_onto_grid(w, per_channel)
    assert integers.dtype == np.int8 and np.abs(integers).max() == 127
    on_grid = integers.astype(np.float32) * scales
    assert np.abs(on_grid - w).max() <= 0.5 * scales.max() * (1 + 1e-6)
    rows = on_grid.reshape(len(w), -1) if per_channel else on_grid.reshape(1, -1)
    again = [quantize_data(row, TensorProto.INT8, True)[2] for row in rows]
    np.testing.assert_array_equal(np.stack(again).reshape(w.shape), integers)


def _conv_model(weights: list[np.ndarray], groups: list[int], channels: int) -> onnx.ModelProto:
    """input (N, channels, 8, 8) -> Conv -> Conv ... (no padding), every Conv's output a graph
    output; the second conv has no bias."""
    nodes, inits, outputs = [], [], []
    current = "input"
    for k, (w, group) in enumerate(zip(weights, groups, strict=True)):
        inputs = [current, f"w{k}"]
        inits.append(numpy_helper.from_array(w, f"w{k}"))
        if k != 1:
            inits.append(numpy_helper.from_array(np.full(len(w), 0.1 * k, np.float32), f"b{k}"))
            inputs.append(f"b{k}")
        nodes.append(helper.make_node("Conv", inputs, [f"y{k}"], name=f"conv{k}", group=group))
        outputs.append(helper.make_tensor_value_info(f"y{k}", TensorProto.FLOAT, None))
        current = f"y{k}"
    graph = helper.make_graph(
        nodes,
        "convs",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, channels, 8, 8])],
        outputs,
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_bias_correction_cancels_the_mean_shift_of_rounding() -> None:
    # dense 4->6, grouped (2 groups) 6->6, depthwise 6->6, on an input with a large mean
    weights = [_weights(1, (6, 4, 1, 1)), _weights(2, (6, 3, 3, 3)), _weights(3, (6, 1, 3, 3))]
    groups = [1, 2, 6]
    rng = np.random.default_rng(4)
    # flat maps (a value per image and channel): a 3x3 conv without padding sees the same mean
    # in the centre of a map as over all of it, so the predicted shift is exact
    x = rng.normal(0, 0.5, (16, 4, 1, 1)) + np.array([3.0, -2.0, 1.0, 5.0])[:, None, None]
    x = np.broadcast_to(x, (16, 4, 8, 8)).astype(np.float32)
    names = ["y0", "y1", "y2"]
    ref = tensor_means(_conv_model(weights, groups, 4), names, x, 8)
    for k, name in enumerate(names):
        # round only conv k (the others stay fp32, so its input is the fp32 one)
        rounded = [w.copy() for w in weights]
        integers, scales = round_onto_grid(weights[k], True)
        rounded[k] = integers.astype(np.float32) * scales
        plain = tensor_means(_conv_model(rounded, groups, 4), names, x, 8)
        x_mean = tensor_means(_conv_model(weights, groups, 4), ["input", *names], x, 8)
        inputs = ["input", *names][k]
        predicted = output_shift(rounded[k] - weights[k], x_mean[inputs], groups[k])
        np.testing.assert_allclose(plain[name] - ref[name], predicted, rtol=1e-3, atol=2e-6)
        assert np.abs(predicted).max() > 1e-3  # there is a shift to cancel

    model = _conv_model(weights, groups, 4)
    convs = quantized_convs(model.graph, exclude=[])
    WEIGHT_CORRECTIONS.get("bias").before(Correction(model, convs, x, 8, per_channel=True))
    assert [n.name for n in convs] == ["conv0", "conv1", "conv2"]
    assert len(convs[1].input) == 3  # the bias-free conv got one
    corrected = tensor_means(model, names, x, 8)
    # each conv corrected on its fp32 input's mean; the first is exact, the later ones see the
    # (corrected, hence same-mean) rounded outputs before them
    np.testing.assert_allclose(corrected["y0"], ref["y0"], atol=2e-5)
    for name in names[1:]:
        assert np.abs(corrected[name] - ref[name]).max() < 2e-4


class _NearTieNet(torch.nn.Module):
    """A fp32 stem putting every channel near +5, then a 1x1 conv whose class-0 weights lose
    0.4 of an int8 step each in rounding and class-1's gain 0.4 (a shift of -/+0.24 on the
    logit), while fp32 prefers class 0 by 0.18: int8 without correction flips every image."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = torch.nn.Conv2d(3, 16, 1)
        self.body = torch.nn.Conv2d(16, 3, 1)
        step = 1.0 / 127  # the int8 step of a channel whose largest weight is 1
        assert self.stem.bias is not None and self.body.bias is not None
        with torch.no_grad():
            self.stem.weight.mul_(0.1)
            self.stem.bias.fill_(5.0)
            self.body.weight.zero_()
            self.body.weight[:, 0] = 1.0
            self.body.weight[0, 1:] = 0.4 * step
            self.body.weight[1, 1:] = 0.6 * step
            self.body.weight[2, 1:] = 0.0
            self.body.bias.copy_(torch.tensor([0.3, 0.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem(x)).mean((2, 3))


def _noise(folder: Path, n: int = 12) -> np.ndarray:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir()
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"{i:02d}.png")
    x = (images / 255.0 - np.array(PRE.mean)) / np.array(PRE.std)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), np.float32)


def _int8_weights(path: Path) -> dict[str, np.ndarray]:
    """Conv name -> the int8 weight integers of a QDQ file."""
    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    out = {}
    for node in graph.node:
        dq = producers.get(node.input[1]) if node.op_type == "Conv" else None
        if dq is not None and dq.op_type == "DequantizeLinear":
            out[node.name] = inits[dq.input[0]]
    return out


def test_correction_keeps_the_top1_that_rounding_flips(tmp_path: Path) -> None:
    from imgrec.inference.onnx import cpu_session
    from imgrec.quantize import session_logits

    net = _NearTieNet()
    fp32 = _export(net, tmp_path / "net.onnx")
    x = _noise(tmp_path / "calib")
    ref = session_logits(cpu_session(fp32, 1), x)
    assert (ref.argmax(1) == 0).all()
    got, integers = {}, {}
    for correction in ("none", "bias", "gptq"):
        settings = QuantizeSettings(
            keep_fp32=("first_conv",), min_agreement=0.0, weight_correction=correction
        )
        result = quantize_onnx(fp32, tmp_path / "calib", PRE, settings=settings, progress=False)
        got[correction] = session_logits(cpu_session(result.path, 1), x)
        integers[correction] = _int8_weights(result.path)
    assert (got["none"].argmax(1) == 1).all()  # rounding flips every image
    for correction in ("bias", "gptq"):
        assert (got[correction].argmax(1) == 0).all()
        assert np.abs(got[correction] - ref).max() < 0.05
    # the body conv is int8 in both, with the integers ONNX Runtime chooses itself
    assert list(integers["bias"]) == list(integers["none"]) and len(integers["bias"]) == 1
    for name, values in integers["bias"].items():
        np.testing.assert_array_equal(values, integers["none"][name])
        expected, _ = round_onto_grid(net.body.weight.detach().numpy(), per_channel=True)
        np.testing.assert_array_equal(values, expected)


def test_unknown_correction_is_refused_before_calibrating(tmp_path: Path) -> None:
    from imgrec.errors import UnknownNameError

    fp32 = _export(_NearTieNet(), tmp_path / "net.onnx")
    settings = QuantizeSettings(weight_correction="bais")
    with pytest.raises(UnknownNameError, match="bias"):
        quantize_onnx(fp32, tmp_path / "nowhere", PRE, settings=settings, progress=False)


def test_gptq_rounding_lowers_the_output_error_on_correlated_inputs() -> None:
    from imgrec.int8_weights import gptq_integers

    rng = np.random.default_rng(5)
    w = rng.normal(0, 0.2, (8, 32)).astype(np.float32)
    patches = rng.normal(1.0, 1.0, (4000, 32)) @ rng.normal(0, 1, (32, 32))  # correlated
    moments = patches.T @ patches / len(patches)
    nearest, scales = round_onto_grid(w, per_channel=True)
    chosen = gptq_integers(w, scales, moments)
    assert chosen.dtype == np.int8 and np.abs(chosen.astype(int) - nearest).max() <= 3

    def output_error(q: np.ndarray) -> float:
        return float((((q * scales - w) @ patches.T) ** 2).mean())

    assert output_error(chosen) < 0.5 * output_error(nearest)


def test_second_moments_of_dense_and_depthwise_patches() -> None:
    from imgrec.int8_weights import second_moments

    rng = np.random.default_rng(6)
    weights = [_weights(7, (6, 4, 1, 1)), _weights(8, (6, 1, 3, 3))]
    model = _conv_model(weights, [1, 6], 4)
    conv1 = model.graph.node[1]
    conv1.attribute.extend([helper.make_attribute("pads", [1, 1, 1, 1])])
    x = rng.normal(1.0, 1.0, (4, 4, 8, 8)).astype(np.float32)
    got = second_moments(model, quantized_convs(model.graph, []), x, batch_size=2)
    dense = x.transpose(0, 2, 3, 1).reshape(-1, 4).astype(np.float64)
    np.testing.assert_allclose(got["conv0"], dense.T @ dense / len(dense), rtol=1e-5)
    y0 = tensor_input(model, x)  # conv1's input: conv0's output
    unfold = torch.nn.functional.unfold(torch.from_numpy(y0), 3, padding=1)  # (N, 6*9, 64)
    per_channel = unfold.reshape(4, 6, 9, 64).permute(1, 0, 3, 2).reshape(6, -1, 9).double()
    expected = per_channel.transpose(1, 2) @ per_channel / per_channel.shape[1]
    assert got["conv1"].shape == (6, 9, 9)
    np.testing.assert_allclose(got["conv1"], expected.numpy(), rtol=1e-4, atol=1e-6)


def tensor_input(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["y0"], {"input": x})[0], np.float32)


class _DeepNet(torch.nn.Module):
    """A fp32 stem whose channels are nearly constant (0.13 ... 5.0: between the steps of their
    uint8 grid, so rounding them is a fixed offset per channel, which the analytic correction
    cannot see), then three quantized 3x3 / 1x1 convolutions with ReLUs (random weights)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.a = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.b = torch.nn.Conv2d(8, 8, 1)
        self.c = torch.nn.Conv2d(8, 4, 1)
        assert self.stem.bias is not None
        with torch.no_grad():
            self.stem.weight.mul_(0.001)  # noise far below the uint8 step: no dithering
            self.stem.bias.copy_(torch.linspace(0.13, 5.0, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.b(torch.relu(self.a(torch.relu(self.stem(x))))))
        return self.c(h).mean((2, 3))


def _conv_mean_errors(fp32: Path, qdq: Path, x: np.ndarray) -> np.ndarray:
    """|per-channel mean of each quantized conv's pre-activation output - fp32's|, stacked."""
    from imgrec.int8_weights import _pre_activation

    reference, model = onnx.load(str(fp32)), onnx.load(str(qdq))
    outputs = [n.output[0] for n in model.graph.node if n.op_type == "Conv"]
    producers = {o: n for n in reference.graph.node for o in n.output}
    found = [(o, _pre_activation(producers, o)) for o in outputs]
    pairs = [(o, t) for o, t in found if t is not None]
    assert len(pairs) == 4  # the stem (fp32) and the three quantized convolutions
    got = tensor_means(model, [o for o, _ in pairs], x, 8)
    ref = tensor_means(reference, [t for _, t in pairs], x, 8)
    return np.concatenate([np.abs(got[o] - ref[t]) for o, t in pairs])


def test_measured_correction_matches_the_fp32_means_layer_by_layer(tmp_path: Path) -> None:
    fp32 = _export(_DeepNet(), tmp_path / "deep.onnx")
    x = _noise(tmp_path / "calib")
    errors = {}
    for correction in ("bias", "bias_measured"):
        settings = QuantizeSettings(
            keep_fp32=("first_conv",), min_agreement=0.0, weight_correction=correction
        )
        result = quantize_onnx(fp32, tmp_path / "calib", PRE, settings=settings, progress=False)
        errors[correction] = _conv_mean_errors(fp32, result.path, x)
    assert errors["bias"].max() > 1e-3  # int8 activations leave a shift
    assert errors["bias_measured"].max() < 0.2 * errors["bias"].max()
