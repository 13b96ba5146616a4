"""``ArchSpec``: one architecture's builder and metadata (what the registry in
:mod:`imgrec.models.architectures` holds). Its own module so that the modules defining the
builders (``timm_archs``, ``tv_archs``, ``small``) and the registry that collects them do not
import each other."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Union

import torch
from torch import nn

from imgrec.models.card import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

Pretrained = Union[bool, str]
Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ArchSpec:
    """One registered architecture and its metadata.

    ``builder(num_classes, pretrained, **kw)``: ``pretrained`` is ``False``, ``True`` (the
    best available ImageNet weights: offline when ``offline_weights``, else a download) or a
    path to a weights file. ``min_input_size`` is the smallest input the network accepts.
    """

    name: str
    family: str
    source: str  # "timm" | "torchvision" | "imgrec"
    input_size: int
    builder: Builder = field(repr=False, compare=False)
    min_input_size: int = 32
    pretrained_tags: tuple[str, ...] = ()
    offline_weights: bool = False
    fixed_input_size: bool = False
    resize_size: int | None = None
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    description: str = ""

    def build(self, num_classes: int, pretrained: Pretrained = False, **kw: Any) -> nn.Module:
        """Build the network (see :func:`build_model`)."""
        return self.builder(num_classes, pretrained, **kw)

    @functools.cached_property
    def _meta_stats(self) -> tuple[int, int]:
        with torch.device("meta"):
            module = self.builder(1000, False)
        from imgrec.models.transfer import feature_dim

        return sum(p.numel() for p in module.parameters()), feature_dim(module)

    @property
    def params(self) -> int:
        """Parameter count with a 1000-class head (computed once, on the meta device)."""
        return self._meta_stats[0]

    @property
    def feature_dim(self) -> int:
        """Dimension of the pooled features that feed the classifier head."""
        return self._meta_stats[1]

    @property
    def pretrained_availability(self) -> str:
        """``offline`` (shipped with a package), ``download`` (needs internet) or ``none``."""
        if self.offline_weights:
            return "offline"
        return "download" if self.pretrained_tags else "none"

    def size_kwargs(self, input_size: int) -> dict[str, Any]:
        """Builder kwargs needed to run at ``input_size`` (ViTs fix their patch grid at build).

        Example: ``build_model("vit_tiny_patch16_224", 10, **spec.size_kwargs(96))``
        """
        return {"img_size": input_size} if self.fixed_input_size else {}

    def default_preprocessing(self, input_size: int | None = None) -> Preprocessing:
        """The eval preprocessing of the pretrained weights, optionally at another size."""
        size = input_size or self.input_size
        default_resize = self.resize_size or self.input_size
        resize = round(size * default_resize / self.input_size)
        return Preprocessing(
            input_size=size,
            resize_size=max(resize, size),
            crop="center",
            interpolation=self.interpolation,
            mean=self.mean,
            std=self.std,
        )
