"""OpenVINO CPU sessions: the ``bf16`` precision on CPUs with native bf16 arithmetic.

On a CPU with AMX or AVX512-BF16 (Intel Sapphire Rapids and later, AMD Zen 4 and later)
OpenVINO runs the convolutions and the classifier in bf16 (fp32 accumulation) with no
calibration: about 2x fp32's images/s for EfficientNet-Lite0 on one core of a Sapphire Rapids
Xeon (BENCHMARKS.md, "Reduced precision"). The session has ONNX Runtime's ``run`` signature,
so the runners and the serving backend call either alike::

    session = openvino_session("lite0.onnx", threads=1, streams=2)    # (ConfigError if no bf16)
    logits, = session.run(["logits"], {"input": x})                  # x (B, 3, S, S) float32

OpenVINO is an optional dependency (``pip install 'imgrec[openvino]'``); without it, or on a
CPU without bf16, ``bf16`` is refused with ``precision_unsupported`` and the install command
or the CPU named.

**The input-side convolutions can stay fp32** (:func:`keep_fp32_file`). A network fine-tuned on
images with large flat areas (mnist5k's black backgrounds) learns batch-norm statistics with a
large mean and a small variance in its first layers; folded into the convolutions, they become
large weights whose products cancel against a large bias, so bf16's 8-bit mantissa (e.g. the
black pixel's -2.118 read as -2.125) leaves offsets that the following layers amplify: top-1
agreement with fp32 fell to 42% on such a model (BENCHMARKS.md, "INT8 inference"). The CPU
plugin keeps a node in its original precision when the node carries the
``DisablePrecisionConversion`` runtime attribute (to f16; OpenVINO 2026's successor of
``precise_0``, which it no longer reads), which only the IR reader can attach.
"""

from __future__ import annotations

import functools
import os
import queue
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imgrec.errors import ConfigError

INSTALL_HINT = "pip install 'imgrec[openvino]' (OpenVINO, Apache-2.0), or use --precision fp32"


@functools.lru_cache(maxsize=1)
def _core() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise ConfigError(
            "precision 'bf16' runs on OpenVINO, which is not installed",
            hint=INSTALL_HINT,
            code="precision_unsupported",
        ) from exc
    return openvino.Core()


def cpu_name() -> str:
    """The CPU model as OpenVINO reads it (``lscpu``'s "Model name")."""
    return str(_core().get_property("CPU", "FULL_DEVICE_NAME"))


def require_bf16() -> None:
    """Refuse (``ConfigError``, code ``precision_unsupported``) when OpenVINO is missing or
    this CPU has no native bf16 arithmetic (emulated bf16 would be slower than fp32)."""
    capabilities = _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if "BF16" not in capabilities:
        raise ConfigError(
            f"precision 'bf16' needs a CPU with native bf16 (AMX or AVX512-BF16); "
            f"{cpu_name()} has {', '.join(capabilities)}",
            hint="use --precision fp32 (or int8 with --calibration)",
            code="precision_unsupported",
        )


class OpenVinoSession:
    """An OpenVINO compiled model with ONNX Runtime's ``run(names, feeds)``.

    ``streams`` requests may run at once (one per calling thread: the server's model workers,
    batch prediction's pool), each on ``threads`` threads; more callers wait for a free one.
    Threads are not pinned to cores (the machine is shared with decoding and other work).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, threads: int, streams: int, precision: str
    ) -> None:
        core = _core()
        config = {
            "INFERENCE_PRECISION_HINT": precision,
            "NUM_STREAMS": streams,
            "INFERENCE_NUM_THREADS": threads * streams,
            "ENABLE_CPU_PINNING": False,
        }
        self.compiled = core.compile_model(core.read_model(os.fspath(path)), "CPU", config)
        self.free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(streams):
            self.free.put(self.compiled.create_infer_request())
        # an output may carry several tensor names (the graph's own and the one it exports)
        self.outputs = {name: o for o in self.compiled.outputs for name in o.get_names()}
        self.input_name = self.compiled.input(0).get_any_name()

    def run(self, names: Sequence[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """``names`` outputs (copies) for ``feeds`` (``{"input": (B, 3, S, S) float32}``)."""
        request = self.free.get()
        try:
            results = request.infer({self.input_name: feeds[self.input_name]})
            return [np.array(results[self.outputs[name]]) for name in names]
        finally:
            self.free.put(request)


def openvino_session(
    path: str | os.PathLike[str], threads: int, streams: int = 1, precision: str = "bf16"
) -> OpenVinoSession:
    """A bf16 (default) OpenVINO CPU session for ``path`` (an ONNX file, or the IR ``.xml`` of
    :func:`keep_fp32_file`); refused where bf16 is not native."""
    if precision == "bf16":
        require_bf16()
    return OpenVinoSession(path, threads=threads, streams=streams, precision=precision)


CONVOLUTIONS = ("Convolution", "GroupConvolution")
MERGES = ("Add", "Subtract", "Multiply", "Concat")


def input_convolutions(path: str | os.PathLike[str], limit: int) -> list[str]:
    """Names of the first ``limit`` convolutions of the model at ``path`` (topological order,
    from the input), stopping before the first one whose result only flows into a sum with
    another computed tensor (the end of a residual branch): OpenVINO 2026.4's CPU plugin fuses
    that sum into the convolution, and a kept-fp32 convolution with a fused bf16 sum fails to
    initialize. For EfficientNet-Lite0 that stop is the 9th convolution."""
    model = _core().read_model(os.fspath(path))
    names: list[str] = []
    for op in model.get_ordered_ops():
        if len(names) >= limit:
            break
        if op.get_type_name() not in CONVOLUTIONS:
            continue
        if _ends_in_merge(op):
            break
        names.append(op.get_friendly_name())
    return names


def _ends_in_merge(op: Any) -> bool:
    """Whether every data consumer of ``op``'s output (after a bias ``Add``) merges it with
    another tensor computed from the input."""
    users = [
        t for t in op.output(0).get_target_inputs() if t.get_node().get_type_name() != "ShapeOf"
    ]
    for target in users:
        user = target.get_node()
        if user.get_type_name() not in MERGES:
            return False
        others = [
            v.get_node() for i, v in enumerate(user.input_values()) if i != target.get_index()
        ]
        if not any(_from_input(o) for o in others) and not _ends_in_merge(user):
            return False  # a bias Add whose result goes on elsewhere
    return bool(users)


def _from_input(node: Any) -> bool:
    """Whether ``node``'s values depend on a model input (a bias is a constant, maybe reshaped
    to a shape read from the data: ``ShapeOf`` carries no values)."""
    seen: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        kind = current.get_type_name()
        if kind == "Parameter":
            return True
        if kind in ("ShapeOf", "Constant") or current.get_name() in seen:
            continue
        seen.add(current.get_name())
        stack.extend(v.get_node() for v in current.input_values())
    return False


def keep_fp32_file(
    src: str | os.PathLike[str], n: int, out: str | os.PathLike[str]
) -> tuple[Path, list[str]]:
    """Write ``out`` (OpenVINO IR ``.xml`` + ``.bin``) from the model at ``src`` with its first
    ``n`` input-side convolutions (:func:`input_convolutions`) marked to stay fp32 in a bf16
    session; atomically. Returns ``(out, the marked convolutions' names)``."""
    import openvino

    names = input_convolutions(src, n)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="imgrec-bf16-", dir=target.parent) as work:
        xml = Path(work) / "model.xml"
        openvino.save_model(_core().read_model(os.fspath(src)), str(xml), compress_to_fp16=False)
        tree = ET.parse(xml)
        wanted = set(names)
        for layer in tree.getroot().iter("layer"):
            if layer.get("name") in wanted and layer.get("type") in CONVOLUTIONS:
                info = layer.find("rt_info")
                if info is None:
                    info = ET.SubElement(layer, "rt_info")
                ET.SubElement(
                    info,
                    "attribute",
                    {"name": "DisablePrecisionConversion", "version": "0", "value": "dynamic:f16"},
                )
                wanted.discard(layer.get("name"))
        if wanted:
            raise RuntimeError(f"convolutions not found in the IR: {sorted(wanted)}")
        tree.write(xml)
        os.replace(xml.with_suffix(".bin"), target.with_suffix(".bin"))
        os.replace(xml, target)
    return target, names
