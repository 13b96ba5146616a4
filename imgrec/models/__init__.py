"""Classifier architectures, pretrained weights, model cards and transfer learning.

from imgrec.models import ARCHITECTURES, build_model
ARCHITECTURES.names()                                  # every registered architecture
net = build_model("resnet18", num_classes=10)          # no weights
net = build_model("efficientnet_lite0", 10, pretrained=True)   # offline ImageNet backbone

The names above load on first use: importing a submodule that needs no network (reading a
model card, :mod:`imgrec.models.card`) does not import torch, torchvision or the builders.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ARCHITECTURES", "ArchSpec", "build_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import imgrec.models.architectures as architectures

        return getattr(architectures, name)
    raise AttributeError(f"module 'imgrec.models' has no attribute {name!r}")
