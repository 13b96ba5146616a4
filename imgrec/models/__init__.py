"""Classifier architectures, pretrained weights, model cards and transfer learning.

from imgrec.models import ARCHITECTURES, build_model
ARCHITECTURES.names()                                  # every registered architecture
net = build_model("resnet18", num_classes=10)          # no weights
net = build_model("efficientnet_lite0", 10, pretrained=True)   # offline ImageNet backbone
"""

from __future__ import annotations

from imgrec.models import small, timm_archs, tv_archs
from imgrec.models.architectures import ARCHITECTURES, ArchSpec, build_model, register

# The built-in architectures; the modules holding the builders import the registry, not this.
for _module in (timm_archs, tv_archs, small):
    for _spec in _module.specs():
        register(_spec)

__all__ = ["ARCHITECTURES", "ArchSpec", "build_model"]
