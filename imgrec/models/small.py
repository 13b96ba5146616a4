"""``small_resnet``: imgrec's own CNN for small images (about 16-64 px: digits, icons, CIFAR-like).

Designed for speed on a laptop CPU: a 3x3 stem at full resolution, then a few residual stages
that each halve the resolution, BatchNorm, global average pooling and one linear head. At 28 px
the default width costs about 10 M multiply-adds per image (ResNet-18 at 224 px: 1.8 G).
Input is 3-channel RGB like every imgrec model (grey images are decoded to RGB).

    net = SmallResNet(num_classes=10)             # or build_model("small_resnet", 10)
    net(torch.randn(8, 3, 28, 28)).shape          # (8, 10)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from imgrec.models.spec import ArchSpec, Pretrained


def _conv_bn(c_in: int, c_out: int, stride: int = 1, k: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out)]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity or 1x1-projection shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(c_in, c_out, stride)
        self.conv2, self.bn2 = _conv_bn(c_out, c_out)
        nn.init.zeros_(self.bn2.weight)  # type: ignore[arg-type]  # start as identity: faster, stabler early training
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(*_conv_bn(c_in, c_out, stride, k=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """Stem + ``len(widths)`` residual stages (each strided by 2) + pooled linear head."""

    def __init__(
        self,
        num_classes: int = 10,
        *,
        in_chans: int = 3,
        stem_width: int = 24,
        widths: tuple[int, ...] | list[int] = (32, 64, 128),
        depths: tuple[int, ...] | list[int] = (1, 1, 1),
        stem_stride: int = 1,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(widths) != len(depths) or not widths:
            raise ValueError(f"widths {widths} and depths {depths} must have the same length")
        self.stem = nn.Sequential(*_conv_bn(in_chans, stem_width, stem_stride), nn.ReLU(True))
        stages, c_in = [], stem_width
        for width, depth in zip(widths, depths, strict=True):
            blocks = [BasicBlock(c_in if i == 0 else width, width, 2 if i == 0 else 1)
                      for i in range(depth)]  # fmt: skip
            stages.append(nn.Sequential(*blocks))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self.num_features = c_in
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.fc: nn.Module = nn.Linear(c_in, num_classes) if num_classes else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))  # (B, C, H/8, W/8) with 3 stages

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(torch.flatten(self.pool(x), 1))  # (B, C)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        blocks = r"^stages\.(\d+)" if coarse else r"^stages\.(\d+)\.(\d+)"
        return {"stem": r"^stem\.", "blocks": blocks}


def build_small_resnet(num_classes: int, pretrained: Pretrained = False, **kw: Any) -> nn.Module:
    """Builder for the registry; ``pretrained`` may only be a weights file path."""
    from imgrec.models.weights import apply_pretrained

    module = SmallResNet(num_classes, **kw)
    if pretrained:
        apply_pretrained(module, "small_resnet", pretrained, download=None)
    return module


def specs() -> list[ArchSpec]:
    """The imgrec-native entries of the registry."""
    return [
        ArchSpec(
            name="small_resnet",
            family="small_resnet",
            source="imgrec",
            input_size=32,
            builder=build_small_resnet,
            min_input_size=8,
            resize_size=32,
            interpolation="bilinear",
            mean=(0.5, 0.5, 0.5),
            std=(0.25, 0.25, 0.25),
            description="fast residual CNN for 16-64 px images, trained from scratch",
        )
    ]
