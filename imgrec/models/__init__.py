"""Classifier architectures, pretrained weights, model cards and transfer learning.

from imgrec.models import ARCHITECTURES, build_model
ARCHITECTURES.names()                                  # every registered architecture
net = build_model("resnet18", num_classes=10)          # no weights
net = build_model("efficientnet_lite0", 10, pretrained=True)   # offline ImageNet backbone
"""

from __future__ import annotations

from imgrec.models.registry import ARCHITECTURES, ArchSpec, _register_builtin, build_model

_register_builtin()

__all__ = ["ARCHITECTURES", "ArchSpec", "build_model"]
