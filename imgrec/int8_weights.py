"""Int8 weights rounded before ONNX Runtime quantizes them, and biases corrected for the rounding.

ONNX Runtime's static quantization (:mod:`imgrec.quantize`) rounds each quantized
convolution's weights to a symmetric int8 grid (per output channel: scale = max |w| / 127,
integers in [-127, 127]). Rounding moves every output channel's mean by
``(W_int8 - W) . E[x]``, a systematic shift that the following layers amplify. A correction
here rounds the fp32 weights onto exactly that grid first (:func:`round_onto_grid`, with ONNX
Runtime's own scale and rounding functions, so its re-quantization reproduces the same
integers) and moves the shift into the bias, where int8 inference keeps it (int32). The graph
is unchanged: ONNX Runtime still fuses it into ``QLinearConv``::

    model = onnx.load("prepared.onnx")
    convs = quantized_convs(model.graph, exclude=["stem"])
    WEIGHT_CORRECTIONS.get("bias")(Correction(model, convs, x, batch_size=8, per_channel=True))

Corrections live in :data:`WEIGHT_CORRECTIONS`: ``none`` (ONNX Runtime rounds the weights
itself, the behaviour before 2026-12-02), ``bias`` (the analytic correction from the means of
each convolution's fp32 input over the calibration images).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgrec.registry import Registry


@dataclass
class Correction:
    """What a weight correction works on. ``model`` (an fp32 ``onnx.ModelProto``) is changed in
    place; ``convs`` are the ``Conv`` nodes ONNX Runtime will quantize; ``x`` the preprocessed
    calibration images (N, C, H, W)."""

    model: Any
    convs: list[Any]
    x: np.ndarray
    batch_size: int
    per_channel: bool


WeightCorrection = Callable[[Correction], None]
WEIGHT_CORRECTIONS: Registry[WeightCorrection] = Registry(
    "int8 weight correction", list_hint="see imgrec.int8_weights.WEIGHT_CORRECTIONS"
)


def quantized_convs(graph: Any, exclude: Iterable[str]) -> list[Any]:
    """The ``Conv`` nodes of ``graph`` with an initializer weight that are not in ``exclude``
    (the ones static quantization turns into int8), in graph order."""
    skip = set(exclude)
    inits = {i.name for i in graph.initializer}
    return [
        n
        for n in graph.node
        if n.op_type == "Conv" and n.name not in skip and len(n.input) > 1 and n.input[1] in inits
    ]


def round_onto_grid(w: np.ndarray, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(int8 integers, float32 scales)`` of ``w`` (O, ...) exactly as ONNX Runtime's static
    quantization computes them for int8 weights (symmetric, no reduced range; per output
    channel or one scale for the tensor); scales have shape (O, 1, ...) or (1, ...) so that
    ``integers * scales`` is the weight on the grid."""
    from onnx import TensorProto
    from onnxruntime.quantization.quant_utils import compute_data_quant_params, quantize_nparray

    w = np.asarray(w, np.float32)
    rows = w.reshape(len(w), -1) if per_channel else w.reshape(1, -1)
    integers, scales = [], []
    for row in rows:
        zero, scale = compute_data_quant_params(row, TensorProto.INT8, True, reduce_range=False)
        assert int(zero) == 0, "symmetric int8 has zero point 0"
        integers.append(quantize_nparray(TensorProto.INT8, row, scale, zero))
        scales.append(np.float32(scale))
    shape = (len(rows),) + (1,) * (w.ndim - 1)
    return np.stack(integers).reshape(w.shape), np.asarray(scales, np.float32).reshape(shape)


def _initializers(graph: Any) -> dict[str, Any]:
    return {i.name: i for i in graph.initializer}


def _group(node: Any) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def bias_of(graph: Any, node: Any) -> np.ndarray:
    """The bias of ``Conv`` ``node`` (zeros when it has none)."""
    from onnx import numpy_helper

    inits = _initializers(graph)
    if len(node.input) > 2 and node.input[2]:
        return numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
    return np.zeros(numpy_helper.to_array(inits[node.input[1]]).shape[0], np.float32)


def set_bias(graph: Any, node: Any, bias: np.ndarray) -> None:
    """Replace ``node``'s bias initializer (adding one named ``<node>.int8_bias`` when it has
    none, or when another node shares it)."""
    from onnx import numpy_helper

    bias = np.asarray(bias, np.float32)
    current = node.input[2] if len(node.input) > 2 else ""
    shared = sum(len(n.input) > 2 and n.input[2] == current for n in graph.node) > 1
    if not current or shared:
        name = f"{node.name or node.output[0]}.int8_bias"
        graph.initializer.append(numpy_helper.from_array(bias, name))
        while len(node.input) < 3:
            node.input.append("")
        node.input[2] = name
        return
    inits = _initializers(graph)
    inits[node.input[2]].CopyFrom(numpy_helper.from_array(bias, node.input[2]))


def round_weights(graph: Any, convs: Sequence[Any], per_channel: bool) -> dict[str, np.ndarray]:
    """Put each conv's weights onto ONNX Runtime's int8 grid; returns ``node name -> (W_grid -
    W)``, the rounding error. A weight shared by several nodes is rounded once."""
    from onnx import numpy_helper

    inits = _initializers(graph)
    errors: dict[str, np.ndarray] = {}
    done: dict[str, np.ndarray] = {}
    for node in convs:
        name = node.input[1]
        if name not in done:
            w = numpy_helper.to_array(inits[name]).astype(np.float32)
            integers, scales = round_onto_grid(w, per_channel)
            on_grid = (integers.astype(np.float32) * scales).astype(np.float32)
            inits[name].CopyFrom(numpy_helper.from_array(on_grid, name))
            done[name] = on_grid - w
        errors[node.name] = done[name]
    return errors


def tensor_means(
    model: Any, names: Sequence[str], x: np.ndarray, batch_size: int
) -> dict[str, np.ndarray]:
    """Per-channel means (over images and positions) of the ``names`` tensors (N, C, ...) when
    ``model`` runs on ``x``, accumulated batch by batch."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {o.name for o in probe.graph.output}
    wanted = list(dict.fromkeys(names))
    for name in wanted:
        if name not in outputs:
            probe.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        probe.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    input_name = session.get_inputs()[0].name
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for start in range(0, len(x), batch_size):
        got = session.run(wanted, {input_name: x[start : start + batch_size]})
        for name, value in zip(wanted, got, strict=True):
            per_channel = np.moveaxis(value, 1, 0).reshape(value.shape[1], -1).astype(np.float64)
            sums[name] = sums.get(name, 0.0) + per_channel.sum(1)
            counts[name] = counts.get(name, 0) + per_channel.shape[1]
    return {name: (sums[name] / counts[name]).astype(np.float32) for name in wanted}


def output_shift(error: np.ndarray, input_mean: np.ndarray, group: int) -> np.ndarray:
    """Mean change of each output channel of a convolution whose weights changed by ``error``
    (O, C/group, kh, kw) on an input with per-channel mean ``input_mean`` (C,): for output
    channel o of group g, ``sum over its inputs i and taps of error[o, i] * mean[g*C/group + i]``
    (borders, where the padding reads zeros, are ignored)."""
    out_channels, per_group = error.shape[0], error.shape[1]
    per_tap = error.reshape(out_channels, per_group, -1).sum(2)  # (O, C/group)
    groups = input_mean.reshape(group, per_group)  # (group, C/group)
    owner = np.arange(out_channels) // (out_channels // group)
    return (per_tap * groups[owner]).sum(1).astype(np.float32)


@WEIGHT_CORRECTIONS.register("none")
def no_correction(c: Correction) -> None:
    """ONNX Runtime rounds the weights itself; biases unchanged."""


@WEIGHT_CORRECTIONS.register("bias")
def analytic_bias_correction(c: Correction) -> None:
    """Weights onto the int8 grid, each conv's bias minus the mean shift its rounding causes on
    its fp32 input's per-channel mean over the calibration images."""
    graph = c.model.graph
    means = tensor_means(c.model, [n.input[0] for n in c.convs], c.x, c.batch_size)
    errors = round_weights(graph, c.convs, c.per_channel)
    for node in c.convs:
        shift = output_shift(errors[node.name], means[node.input[0]], _group(node))
        set_bias(graph, node, bias_of(graph, node) - shift)
