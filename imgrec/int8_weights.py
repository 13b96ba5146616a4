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
    correction = Correction(model, convs, x, batch_size=8, per_channel=True)
    WEIGHT_CORRECTIONS.get("bias").before(correction)

Corrections live in :data:`WEIGHT_CORRECTIONS`: ``none`` (ONNX Runtime rounds the weights
itself, the behaviour before 2026-12-02), ``bias`` (nearest grid step, then the analytic
correction from the means of each convolution's fp32 input over the calibration images) and
``gptq`` (each weight rounded up or down so that the layer's output error on the calibration
images' input patches stays small, :func:`gptq_integers`, then the same bias correction) and
``bias_measured`` (``bias``, then, layer by layer on the quantized model ONNX Runtime wrote,
the per-channel output means compared with fp32's and the int32 biases moved by the
difference: :func:`measured_bias_correction`; it also corrects what the int8 activations shift).

ONNX Runtime enlarges the scale of an output channel whose weights are so small against its
bias that the int32 bias would overflow (its "adjust weight scale for int32 bias" step, which
depends on the calibrated input range): those channels (22 of 20,928 in EfficientNet-Lite0,
all weights below 3e-6) get other integers than :func:`round_onto_grid`'s, at no cost.
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
    calibration images (N, C, H, W); ``reference`` the fp32 model as it was (for a correction
    that compares the quantized model with it)."""

    model: Any
    convs: list[Any]
    x: np.ndarray
    batch_size: int
    per_channel: bool
    reference: Any = None


@dataclass(frozen=True)
class WeightCorrection:
    """``before`` changes the fp32 model ONNX Runtime will quantize; ``after`` (optional)
    changes the QDQ model it wrote (``(correction, qdq ModelProto) -> None``)."""

    before: Callable[[Correction], None]
    after: Callable[[Correction, Any], None] | None = None


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


Rounding = Callable[[Any, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``(node, fp32 weights, nearest integers, scales) -> integers`` on the same grid."""


def round_weights(
    graph: Any, convs: Sequence[Any], per_channel: bool, choose: Rounding | None = None
) -> dict[str, np.ndarray]:
    """Put each conv's weights onto ONNX Runtime's int8 grid (the nearest step, or the
    integers ``choose`` picks); returns ``node name -> (W_grid - W)``, the rounding error. A
    weight shared by several nodes is rounded once. Channels whose chosen integers ONNX
    Runtime would not reproduce (a largest |integer| other than 127 changes its scale) keep
    the nearest step."""
    from onnx import numpy_helper

    inits = _initializers(graph)
    errors: dict[str, np.ndarray] = {}
    done: dict[str, np.ndarray] = {}
    for node in convs:
        name = node.input[1]
        if name not in done:
            w = numpy_helper.to_array(inits[name]).astype(np.float32)
            integers, scales = round_onto_grid(w, per_channel)
            if choose is not None:
                chosen = choose(node, w, integers, scales)
                again, _ = round_onto_grid(chosen.astype(np.float32) * scales, per_channel)
                same = (again == chosen).reshape(len(w), -1).all(1)
                if not per_channel:
                    same[:] = same.all()
                integers = np.where(same.reshape((-1,) + (1,) * (w.ndim - 1)), chosen, integers)
            on_grid = (integers.astype(np.float32) * scales).astype(np.float32)
            inits[name].CopyFrom(numpy_helper.from_array(on_grid, name))
            done[name] = on_grid - w
        errors[node.name] = done[name]
    return errors


def _probe(model: Any, names: Sequence[str]) -> tuple[Any, list[str]]:
    """An ONNX Runtime session of a copy of ``model`` that also outputs the ``names`` tensors,
    and those names without repeats (what to pass to ``run``)."""
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
    return session, wanted


def tensor_means(
    model: Any, names: Sequence[str], x: np.ndarray, batch_size: int
) -> dict[str, np.ndarray]:
    """Per-channel means (over images and positions) of the ``names`` tensors (N, C, ...) when
    ``model`` runs on ``x``, accumulated batch by batch."""
    session, wanted = _probe(model, names)
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


def no_correction(c: Correction) -> None:
    """ONNX Runtime rounds the weights itself; biases unchanged."""


def analytic_bias_correction(c: Correction) -> None:
    """Weights onto the int8 grid, each conv's bias minus the mean shift its rounding causes on
    its fp32 input's per-channel mean over the calibration images."""
    _round_and_correct(c, None)


def _round_and_correct(c: Correction, choose: Rounding | None) -> None:
    """:func:`round_weights` (with ``choose``), then each conv's bias minus the mean shift the
    rounding causes on its fp32 input's per-channel mean over the calibration images."""
    graph = c.model.graph
    means = tensor_means(c.model, [n.input[0] for n in c.convs], c.x, c.batch_size)
    errors = round_weights(graph, c.convs, c.per_channel, choose)
    for node in c.convs:
        shift = output_shift(errors[node.name], means[node.input[0]], _group(node))
        set_bias(graph, node, bias_of(graph, node) - shift)


# --- GPTQ-style rounding ---------------------------------------------------------------------
MAX_PATCHES = 20_000
"""Input patches per convolution (sampled across the calibration batches) behind its
second-moment matrix."""


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _patches(x: np.ndarray, node: Any, kernel: tuple[int, int]) -> np.ndarray | None:
    """The input patches a convolution multiplies by its weights: (N, C, Ho, Wo, kh, kw), or
    None for what this does not model (auto_pad, dilation)."""
    if _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    if any(d != 1 for d in _attr(node, "dilations", [1, 1])):
        return None
    top, left, bottom, right = _attr(node, "pads", [0, 0, 0, 0])
    sh, sw = _attr(node, "strides", [1, 1])
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    windows = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(2, 3))
    return windows[:, :, ::sh, ::sw]


def second_moments(
    model: Any, convs: Sequence[Any], x: np.ndarray, batch_size: int
) -> dict[str, np.ndarray]:
    """``node name -> E[p p^T]`` of each convolution's fp32 input patches ``p`` over the
    calibration images: (C*kh*kw, C*kh*kw) for an ordinary convolution, (C, kh*kw, kh*kw) for
    a depthwise one; other grouped convolutions are left out."""
    from onnx import numpy_helper

    inits = _initializers(model.graph)
    shapes = {n.name: numpy_helper.to_array(inits[n.input[1]]).shape for n in convs}
    session, wanted = _probe(model, [n.input[0] for n in convs])
    input_name = session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    batches = max(1, -(-len(x) // batch_size))
    for start in range(0, len(x), batch_size):
        values = session.run(wanted, {input_name: x[start : start + batch_size]})
        got = dict(zip(wanted, values, strict=True))
        for node in convs:
            out_ch, per_group, kh, kw = shapes[node.name]
            group = _group(node)
            patches = _patches(got[node.input[0]], node, (kh, kw))
            depthwise = group > 1 and per_group == 1 and out_ch == group
            if patches is None or not (group == 1 or depthwise):
                continue
            n, c, ho, wo = patches.shape[:4]
            take = min(ho * wo * n, max(1, MAX_PATCHES // batches))
            at = np.unravel_index(rng.choice(n * ho * wo, take, replace=False), (n, ho, wo))
            # (take, C, kh, kw), gathered from the strided view without copying all patches
            flat = patches[at[0], :, at[1], at[2]].reshape(take, c, kh * kw)
            if group == 1:
                dense = flat.reshape(take, c * kh * kw)
                moment = dense.T @ dense
            else:  # depthwise
                per_channel = flat.transpose(1, 0, 2)  # (C, take, kh*kw)
                moment = per_channel.transpose(0, 2, 1) @ per_channel
            sums[node.name] = sums.get(node.name, 0.0) + moment.astype(np.float64)
            counts[node.name] = counts.get(node.name, 0) + take
    return {name: sums[name] / counts[name] for name in sums}


def gptq_integers(
    w: np.ndarray, scales: np.ndarray, moments: np.ndarray, damp: float = 0.01
) -> np.ndarray:
    """Int8 integers for rows ``w`` (R, D) on the grid ``scales`` (R, 1), chosen column by
    column so that ``(W_int8 - W) p`` stays small on patches with second moments ``moments``
    ((D, D), or (R, D, D) per row): each column's rounding error is spread over the columns
    not yet rounded (GPTQ, Frantar et al. 2022, with a fixed grid)."""
    w = w.astype(np.float64).copy()
    h = np.array(moments, np.float64)
    d = h.shape[-1]
    diag = np.einsum("...ii->...i", h)  # a view: writes go to h
    diag[diag == 0] = 1.0  # inputs that are always 0: any rounding does
    diag += damp * diag.mean(-1, keepdims=True)
    upper = np.swapaxes(np.linalg.cholesky(np.linalg.inv(h)), -1, -2)  # U^T U = H^-1
    upper = upper if upper.ndim == 3 else upper[None]  # (R or 1, D, D)
    q = np.zeros(w.shape, np.float64)
    s = scales.reshape(len(w)).astype(np.float64)
    for i in range(d):
        q[:, i] = np.clip(np.round(w[:, i] / s), -127, 127)
        err = (w[:, i] - q[:, i] * s) / upper[:, i, i]
        w[:, i + 1 :] -= err[:, None] * upper[:, i, i + 1 :]
    return q.astype(np.int8)


def gptq_bias_correction(c: Correction) -> None:
    """Weights rounded by :func:`gptq_integers` on each conv's fp32 input patches (ordinary
    and depthwise convolutions; nearest step for others), then biases corrected as ``bias``."""
    moments = second_moments(c.model, c.convs, c.x, c.batch_size)

    def choose(node: Any, w: np.ndarray, nearest: np.ndarray, scales: np.ndarray) -> np.ndarray:
        if node.name not in moments or not c.per_channel:
            return nearest
        rows = w.reshape(len(w), -1)
        return gptq_integers(rows, scales, moments[node.name]).reshape(w.shape)

    _round_and_correct(c, choose)


# --- measured bias correction on the QDQ model --------------------------------------------
def _quantized_bias(node: Any, producers: dict[str, Any]) -> Any | None:
    """The ``DequantizeLinear`` giving a QDQ ``Conv`` its int32 bias, or None."""
    if len(node.input) < 3 or not node.input[2]:
        return None
    dq = producers.get(node.input[2])
    return dq if dq is not None and dq.op_type == "DequantizeLinear" else None


def _pre_activation(producers: dict[str, Any], name: str) -> str | None:
    """The fp32 tensor a QDQ ``Conv`` output named ``name`` corresponds to (``producers``: the
    fp32 model's tensor -> node): the convolution's own output (ONNX Runtime drops a ``Relu`` /
    ``Clip`` after a quantized ``Conv``, whose output quantization clips instead, and gives the
    ``Conv`` the activation's output name)."""
    node = producers.get(name)
    if node is not None and node.op_type in ("Relu", "Clip"):
        name = node.input[0]
        node = producers.get(name)
    return name if node is not None and node.op_type == "Conv" else None


def measured_bias_correction(c: Correction, qdq: Any) -> None:
    """Layer by layer, in graph order: run the QDQ model on the calibration images, compare
    the convolution's per-channel output mean (before its activation) with the fp32 model's,
    and move the difference into its int32 bias. Catches what the analytic correction cannot
    see: the activations' rounding and clipping, and the shifts the layers before pass on.
    Each step measures after the previous ones are corrected (correcting all layers at once
    overshoots: a layer's measured error includes its inputs' errors)."""
    from onnx import numpy_helper

    assert c.reference is not None, "measured bias correction needs the fp32 reference"
    graph = qdq.graph
    producers = {o: n for n in graph.node for o in n.output}
    fp32_producers = {o: n for n in c.reference.graph.node for o in n.output}
    inits = _initializers(graph)
    steps: list[tuple[str, str, Any]] = []  # (QDQ conv output, fp32 tensor, bias DQ node)
    for node in graph.node:
        weight = producers.get(node.input[1]) if node.op_type == "Conv" else None
        bias = _quantized_bias(node, producers)
        target = _pre_activation(fp32_producers, node.output[0]) if bias is not None else None
        quantized = weight is not None and weight.op_type == "DequantizeLinear"
        if quantized and target is not None and bias is not None:
            steps.append((node.output[0], target, bias))
    targets = tensor_means(c.reference, [t for _, t, _ in steps], c.x, c.batch_size)
    for output, target, dq in steps:
        got = tensor_means(qdq, [output], c.x, c.batch_size)[output]
        integers = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float64)
        scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
        moved = np.round(integers - (got - targets[target]) / scale)
        limit = np.iinfo(np.int32)
        moved = np.clip(moved, limit.min + 1, limit.max).astype(np.int32)
        inits[dq.input[0]].CopyFrom(numpy_helper.from_array(moved, dq.input[0]))


WEIGHT_CORRECTIONS.add("none", WeightCorrection(no_correction))
WEIGHT_CORRECTIONS.add("bias", WeightCorrection(analytic_bias_correction))
WEIGHT_CORRECTIONS.add("gptq", WeightCorrection(gptq_bias_correction))
WEIGHT_CORRECTIONS.add(
    "bias_measured", WeightCorrection(analytic_bias_correction, measured_bias_correction)
)
