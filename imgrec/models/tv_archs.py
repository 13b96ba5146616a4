"""Architectures whose canonical source is torchvision (VGG, Inception v3).

The classes subclass torchvision's so state-dict keys stay torchvision's own (its weight files
load unchanged) and add the small timm-style interface the rest of imgrec uses.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torchvision
from torch import nn
from torchvision.models import inception as tv_inception
from torchvision.models import vgg as tv_vgg

from imgrec.models.spec import ArchSpec, Pretrained


class VGG(tv_vgg.VGG):
    """torchvision VGG; features are the 4096-d pre-logits of the classifier MLP."""

    num_features = 4096

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 512, h, w)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (B, 512*7*7)
        x = self.classifier[:-1](x)  # (B, 4096)
        return x if pre_logits else self.classifier[-1](x)

    def get_classifier(self) -> nn.Module:
        return self.classifier[-1]

    def reset_classifier(self, num_classes: int) -> None:
        self.classifier[-1] = nn.Linear(4096, num_classes) if num_classes else nn.Identity()

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        # one group per conv stage (indices between max-pools), then the MLP
        stages, stage = [], 0
        for idx, layer in enumerate(self.features):
            stages.append((rf"^features\.{idx}\.", (stage,)))
            if isinstance(layer, nn.MaxPool2d):
                stage += 1
        return {"stem": r"^features\.0\.", "blocks": [*stages, (r"^classifier\.[0-5]\.", (99999,))]}


class Inception3(tv_inception.Inception3):
    """torchvision Inception v3 without the auxiliary head (one output type in train and eval)."""

    num_features = 2048
    _STAGES = (
        "Conv2d_1a_3x3|Conv2d_2a_3x3|Conv2d_2b_3x3",
        "Conv2d_3b_1x1|Conv2d_4a_3x3",
        "Mixed_5b|Mixed_5c|Mixed_5d",
        "Mixed_6a|Mixed_6b|Mixed_6c|Mixed_6d|Mixed_6e",
        "Mixed_7a|Mixed_7b|Mixed_7c",
    )
    _POOL_AFTER: ClassVar[dict[str, str]] = {
        "Conv2d_2b_3x3": "maxpool1",
        "Conv2d_4a_3x3": "maxpool2",
    }

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._transform_input(x)
        for name in "|".join(self._STAGES).split("|"):
            x = getattr(self, name)(x)
            if name in self._POOL_AFTER:
                x = getattr(self, self._POOL_AFTER[name])(x)
        return x  # (B, 2048, h, w)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.dropout(self.avgpool(x)), 1)  # (B, 2048)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(2048, num_classes) if num_classes else nn.Identity()

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        blocks = [(rf"^(?:{names})\.", (i,)) for i, names in enumerate(self._STAGES[1:])]
        return {"stem": rf"^(?:{self._STAGES[0]})\.", "blocks": blocks}


def _vgg_builder(cfg: str, batch_norm: bool, weights: Any) -> Any:
    def build(num_classes: int, pretrained: Pretrained = False, **kw: Any) -> nn.Module:
        from imgrec.models.weights import apply_pretrained

        layers = tv_vgg.make_layers(tv_vgg.cfgs[cfg], batch_norm=batch_norm)
        module = VGG(layers, num_classes=num_classes, init_weights=not pretrained, **kw)
        if pretrained:
            name = f"vgg{'11' if cfg == 'A' else '16'}{'_bn' if batch_norm else ''}"
            apply_pretrained(
                module,
                name,
                pretrained,
                download=lambda: _tv_state(weights),
                download_url=weights.url,
            )
        return module

    return build


def _inception_builder(num_classes: int, pretrained: Pretrained = False, **kw: Any) -> nn.Module:
    from imgrec.models.weights import apply_pretrained

    # transform_input=True always: torchvision's ImageNet weights expect it, and with
    # ImageNet mean/std preprocessing it is a harmless fixed affine map when training anew.
    kw.setdefault("transform_input", True)
    module = Inception3(
        num_classes=num_classes, aux_logits=False, init_weights=not pretrained, **kw
    )
    if pretrained:
        weights = torchvision.models.Inception_V3_Weights.IMAGENET1K_V1
        apply_pretrained(
            module,
            "inception_v3",
            pretrained,
            download=lambda: {
                k: v for k, v in _tv_state(weights).items() if not k.startswith("AuxLogits.")
            },
            download_url=weights.url,
        )
    return module


def _tv_state(weights: Any) -> dict[str, torch.Tensor]:
    return dict(weights.get_state_dict(progress=True, check_hash=True))


def specs() -> list[ArchSpec]:
    """The torchvision entries of the registry."""
    tvm = torchvision.models
    vggs = (
        ("vgg11_bn", "A", True, tvm.VGG11_BN_Weights.IMAGENET1K_V1),
        ("vgg16", "D", False, tvm.VGG16_Weights.IMAGENET1K_V1),
    )
    out = [
        ArchSpec(
            name=name,
            family="vgg",
            source="torchvision",
            input_size=224,
            builder=_vgg_builder(cfg, bn, weights),
            min_input_size=32,
            pretrained_tags=(f"torchvision.{type(weights).__name__}.{weights.name}",),
            resize_size=256,
            interpolation="bilinear",
        )
        for name, cfg, bn, weights in vggs
    ]
    out.append(
        ArchSpec(
            name="inception_v3",
            family="inception",
            source="torchvision",
            input_size=299,
            builder=_inception_builder,
            min_input_size=75,
            pretrained_tags=("torchvision.Inception_V3_Weights.IMAGENET1K_V1",),
            resize_size=342,
            interpolation="bilinear",
        )
    )
    return out
