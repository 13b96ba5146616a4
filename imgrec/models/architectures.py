"""The architecture registry: every classifier imgrec can build, from timm, torchvision or imgrec.

Each entry is an :class:`ArchSpec` with a builder ``(num_classes, pretrained, **kw) -> nn.Module``
and metadata (family, source, default input size, pretrained tags; parameter count and feature
dimension are computed lazily on the ``meta`` device, without allocating weights)::

    from imgrec.models import ARCHITECTURES, build_model
    ARCHITECTURES.get("resnet18").params          # 11_178_051 (with 1000 classes)
    net = build_model("efficientnet_lite0", num_classes=3, pretrained=True)  # offline weights

Sources: timm for most; torchvision where it is the canonical source of the reference
ImageNet weights (``vgg11_bn``, ``vgg16``, ``inception_v3``: timm's are ports of those);
imgrec's own ``small_resnet`` for small images. All built modules expose the timm interface
(``forward_features``, ``forward_head(x, pre_logits=...)``, ``get_classifier``,
``reset_classifier``, ``group_matcher``) that :mod:`imgrec.models.transfer` relies on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from imgrec.models.card import ModelCard
from imgrec.models.small import specs as small_specs
from imgrec.models.spec import ArchSpec, Builder, Pretrained
from imgrec.models.timm_archs import specs as timm_specs
from imgrec.models.tv_archs import specs as tv_specs
from imgrec.models.weights import load_state_strict
from imgrec.registry import Registry

if TYPE_CHECKING:
    import torch

__all__ = ["ARCHITECTURES", "ArchSpec", "Builder", "Pretrained", "build_from_card", "build_model",
           "register"]  # fmt: skip

ARCHITECTURES: Registry[ArchSpec] = Registry("architecture", list_hint="imgrec architectures")


def register(spec: ArchSpec) -> ArchSpec:
    """Add ``spec`` to :data:`ARCHITECTURES` (duplicate names are an error)."""
    ARCHITECTURES.add(spec.name, spec)
    return spec


def build_model(
    name: str, num_classes: int, *, pretrained: Pretrained = False, **kw: Any
) -> nn.Module:
    """Build architecture ``name`` with a ``num_classes`` head.

    ``pretrained``: ``False``; ``True`` for ImageNet weights (the backbone is loaded, the head
    is new when ``num_classes != 1000``); or a path to a safetensors / plain state-dict file.
    Unknown names raise ``UnknownNameError`` with suggestions.

    Example: ``build_model("resnet18", num_classes=10)``
    """
    return ARCHITECTURES.get(name).build(num_classes, pretrained, **kw)


def build_from_card(card: ModelCard, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """Build ``card.architecture`` with ``card.num_classes`` and load ``state_dict`` strictly.

    Shape or key mismatches (e.g. a head for a different class count) raise ``ModelError``
    naming the tensors. The module is returned in eval mode.
    """
    module = build_model(
        card.architecture, num_classes=card.num_classes, pretrained=False, **card.arch_kwargs
    )
    load_state_strict(module, state_dict, source=f"weights for {card.architecture}")
    return module.eval()


# The built-in architectures (the modules holding the builders import ``spec``, not this).
for _specs in (timm_specs, tv_specs, small_specs):
    for _spec in _specs():
        register(_spec)
