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
"""

from __future__ import annotations

import functools
import os
import queue
from collections.abc import Sequence
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
    """A bf16 (default) OpenVINO CPU session for ``path``; refused where bf16 is not native."""
    if precision == "bf16":
        require_bf16()
    return OpenVinoSession(path, threads=threads, streams=streams, precision=precision)
