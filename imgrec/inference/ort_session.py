"""The ONNX Runtime CPU session every fp32 and int8 model runs in (no torch: ``imgrec predict``
and ``imgrec serve`` open a cached export with it before torch is ever imported)."""

from __future__ import annotations

import os
from typing import Any


def cpu_session(path: str | os.PathLike[str], threads: int) -> Any:
    """An ONNX Runtime CPU session for inference beside decode threads (batch predict and the
    server): ``threads`` intra-op threads, all graph optimizations, and idle intra-op threads
    that sleep rather than spin on the cores the decoders and the HTTP loop need."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
