"""Transfer learning: a new head for N classes, freezing, and pooled feature extraction.

Every imgrec-built network has the timm interface (``forward_features``, ``forward_head``,
``get_classifier``, ``reset_classifier``, ``group_matcher``), so these work for all of them::

    net = build_model("efficientnet_lite0", num_classes=5, pretrained=True)
    freeze(net, parse_freeze("backbone"))          # only the head trains
    feats = features(net, x)                        # (B, 1280), computed once and cached
    logits = head(net)(feats)                       # (B, 5): the frozen-backbone fast path
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from imgrec.errors import ConfigError

FREEZE_HELP = "'none', 'backbone', or 'first:N' / N (freeze the stem and the first N stages)"


@dataclass(frozen=True)
class FreezeSpec:
    """What to freeze: ``mode`` is ``none``, ``backbone`` or ``first`` (with ``n`` stages)."""

    mode: str = "none"
    n: int = 0

    def __str__(self) -> str:
        return f"first:{self.n}" if self.mode == "first" else self.mode


def parse_freeze(value: str | int | FreezeSpec | None) -> FreezeSpec:
    """Parse ``"backbone"``, ``"none"``, ``"first:2"``, ``"2"`` or ``2`` into a FreezeSpec."""
    if isinstance(value, FreezeSpec):
        return value
    if value is None or value is False:
        return FreezeSpec("none")
    if isinstance(value, bool):
        return FreezeSpec("backbone")
    text = str(value).strip().lower()
    if text in ("none", "backbone"):
        return FreezeSpec(text)
    count = text.removeprefix("first:").removeprefix("first")
    if count.isdigit():
        return FreezeSpec("first", int(count))
    raise ConfigError(f"invalid freeze value {value!r}", hint=f"use {FREEZE_HELP}")


def head(module: nn.Module) -> nn.Module:
    """The classifier head (maps pooled features ``(B, D)`` to logits ``(B, N)``)."""
    return module.get_classifier()  # type: ignore[operator,no-any-return]


def set_head(module: nn.Module, num_classes: int) -> nn.Module:
    """Replace the head with a fresh one for ``num_classes`` (0 -> identity); returns it."""
    module.reset_classifier(num_classes)  # type: ignore[operator]
    return head(module)


def features(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled pre-logit features: ``(B, 3, H, W) -> (B, D)``; ``head(module)(f)`` gives logits."""
    fmap = module.forward_features(x)  # type: ignore[operator]
    return module.forward_head(fmap, pre_logits=True)  # type: ignore[operator,no-any-return]


def feature_dim(module: nn.Module) -> int:
    """``D`` of :func:`features` (timm's ``head_hidden_size`` where it differs)."""
    dim: Any = getattr(module, "head_hidden_size", None) or module.num_features
    return int(dim)


def stage_groups(module: nn.Module) -> list[list[str]]:
    """Backbone parameter names grouped input-to-output: ``[stem, stage1, ..., rest]``.

    Uses the module's coarse ``group_matcher`` (timm's convention); head parameters are
    excluded.
    """
    from timm.models import group_parameters

    head_ids = {id(p) for p in head(module).parameters()}
    named = dict(module.named_parameters())
    groups = group_parameters(module, module.group_matcher(coarse=True))  # type: ignore[operator]
    out = []
    for gid in sorted(groups):
        names = [n for n in groups[gid] if id(named[n]) not in head_ids]
        if names:
            out.append(names)
    return out


def freeze(module: nn.Module, spec: FreezeSpec | str | int | None) -> list[str]:
    """Set ``requires_grad=False`` per ``spec``; returns the frozen parameter names.

    ``backbone``: everything but the head. ``first:N``: the stem and the next N stages.
    Frozen BatchNorm layers should also stay in eval mode while training: call
    :func:`train_mode` instead of ``module.train()``.
    """
    spec = parse_freeze(spec)
    for p in module.parameters():
        p.requires_grad_(True)
    if spec.mode == "none":
        return []
    head_ids = {id(p) for p in head(module).parameters()}
    if spec.mode == "backbone":
        names = [n for n, p in module.named_parameters() if id(p) not in head_ids]
    else:
        groups = stage_groups(module)
        if spec.n >= len(groups):
            raise ConfigError(
                f"freeze first:{spec.n} but this network has only {len(groups) - 1} stages "
                "after its stem",
                hint=f"use first:0..first:{len(groups) - 2}, or 'backbone'",
            )
        names = [n for group in groups[: spec.n + 1] for n in group]
    params = dict(module.named_parameters())
    for n in names:
        params[n].requires_grad_(False)
    return names


def train_mode(module: nn.Module) -> nn.Module:
    """``module.train()``, but normalization layers whose parameters are all frozen stay in
    eval mode (their running statistics are part of the frozen backbone)."""
    module.train()
    for sub in module.modules():
        if isinstance(sub, nn.modules.batchnorm._NormBase):
            own = list(sub.parameters(recurse=False))
            if own and not any(p.requires_grad for p in own):
                sub.eval()
    return module


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Parameters with ``requires_grad`` (what an optimizer should get after :func:`freeze`)."""
    return [p for p in module.parameters() if p.requires_grad]
