"""imgrec: image recognition (classification and detection) as an MLOps system.

Python API (mirrors the CLI)::

    import imgrec

    result = imgrec.train("data/mnist5k", epochs=10)        # -> TrainResult
    model = imgrec.load_model(result.model_dir)             # or "efficientnet_lite0"
    model.predict(["photo.jpg"], top_k=3)                   # -> list of Prediction
    imgrec.evaluate(result.model_dir, "data/mnist5k")       # -> dict of metrics
    imgrec.predict(["street.jpg"], model="runs/d/model", score_threshold=0.5)  # a detector

``train``, ``evaluate`` and ``predict`` find the task like the CLI does (``imgrec.api``).
"""

from __future__ import annotations

import os
from typing import Any

# Must be set before torch loads its OpenMP runtime: spinning worker threads stall badly on
# shared or busy CPUs (see imgrec.engine.run.auto_threads). A user's value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# Heavy modules (torch, timm) load on first use so `imgrec --help` stays fast.
_LAZY = {
    "train": ("imgrec.api", "train"),
    "evaluate": ("imgrec.api", "evaluate"),
    "load_model": ("imgrec.predictor", "load_model"),
    "predict": ("imgrec.api", "predict"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'imgrec' has no attribute {name!r}")
