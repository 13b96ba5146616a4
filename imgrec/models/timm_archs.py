"""Architectures built by timm (the registry's main source)."""

from __future__ import annotations

from typing import Any

from torch import nn

from imgrec.models.registry import ArchSpec, Pretrained

# name, family, min input size, pretrained tag of timm's default weights
_TIMM = (
    ("resnet18", "resnet", 32, "a1_in1k"),
    ("resnet50", "resnet", 32, "a1_in1k"),
    ("efficientnet_b0", "efficientnet", 32, "ra_in1k"),
    ("efficientnet_lite0", "efficientnet_lite", 32, "ra_in1k"),
    ("mobilenetv3_small_100", "mobilenetv3", 32, "lamb_in1k"),
    ("mobilenetv3_large_100", "mobilenetv3", 32, "ra_in1k"),
    ("convnext_atto", "convnext", 32, "d2_in1k"),
    ("convnext_nano", "convnext", 32, "in12k_ft_in1k"),
    ("convnext_tiny", "convnext", 32, "in12k_ft_in1k"),
    ("vit_tiny_patch16_224", "vit", 224, "augreg_in21k_ft_in1k"),
    ("vit_base_patch16_224", "vit", 224, "augreg2_in21k_ft_in1k"),
)


def timm_builder(name: str) -> Any:
    """A builder ``(num_classes, pretrained, **kw)`` for timm model ``name``."""

    def build(num_classes: int, pretrained: Pretrained = False, **kw: Any) -> nn.Module:
        import timm

        from imgrec.models.weights import apply_pretrained

        module = timm.create_model(name, pretrained=False, num_classes=num_classes, **kw)
        if pretrained:
            apply_pretrained(
                module,
                name,
                pretrained,
                download=lambda: _download(name, kw),
                download_url=_download_url(name),
            )
        return module

    build.__name__ = f"build_{name}"
    return build


def _download(name: str, kw: dict[str, Any]) -> dict[str, Any]:
    import timm

    return dict(timm.create_model(name, pretrained=True, **kw).state_dict())


def _download_url(name: str) -> str | None:
    """Where timm fetches ``name``'s default weights: the Hugging Face hub or a plain URL."""
    cfg = _pretrained_cfg(name)
    if cfg.get("hf_hub_id"):
        from huggingface_hub import constants

        return str(constants.ENDPOINT)
    return cfg.get("url") or None


def _pretrained_cfg(name: str) -> dict[str, Any]:
    import timm.models

    cfg = timm.models.get_pretrained_cfg(name)
    return cfg.to_dict() if cfg is not None else {}


def specs() -> list[ArchSpec]:
    """The timm entries of the registry, metadata taken from timm's pretrained configs."""
    from imgrec.models.weights import OFFLINE_WEIGHTS

    out = []
    for name, family, min_size, tag in _TIMM:
        cfg = _pretrained_cfg(name)
        size = int(cfg.get("input_size", (3, 224, 224))[-1])
        crop_pct = float(cfg.get("crop_pct", 0.875))
        out.append(
            ArchSpec(
                name=name,
                family=family,
                source="timm",
                input_size=size,
                builder=timm_builder(name),
                min_input_size=min_size,
                pretrained_tags=(f"{name}.{tag}",),
                offline_weights=name in OFFLINE_WEIGHTS,
                fixed_input_size=bool(cfg.get("fixed_input_size", False)),
                resize_size=int(size / crop_pct),
                interpolation=str(cfg.get("interpolation", "bicubic")),
                mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),  # type: ignore[arg-type]
                std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),  # type: ignore[arg-type]
            )
        )
    return out
