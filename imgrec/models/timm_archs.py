"""Architectures built by timm (the registry's main source).

The metadata of each entry (input size, crop, interpolation, mean/std) is timm's pretrained
config, kept in ``timm_cfgs.json`` so that building the registry does not import timm (~0.5 s,
more on a busy machine; ``imgrec train`` of a non-timm model never needs it). A test keeps the
file equal to the installed timm's configs; rewrite it with ``python -m imgrec.models.timm_archs``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from torch import nn

from imgrec.models.spec import ArchSpec, Pretrained

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


CFG_FILE = Path(__file__).with_name("timm_cfgs.json")
CFG_KEYS = (
    *("input_size", "crop_pct", "interpolation", "mean", "std", "fixed_input_size"),
    *("hf_hub_id", "url"),  # where the weights come from (probed before a download)
)


def _pretrained_cfg(name: str) -> dict[str, Any]:
    stored = _stored_cfgs()
    return stored[name] if name in stored else _live_cfg(name)  # a new entry: ask timm


@functools.cache
def _stored_cfgs() -> dict[str, dict[str, Any]]:
    if not CFG_FILE.exists():
        return {}
    cfgs: dict[str, dict[str, Any]] = json.loads(CFG_FILE.read_text(encoding="utf-8"))
    return cfgs


def _live_cfg(name: str) -> dict[str, Any]:
    import timm.models

    cfg = timm.models.get_pretrained_cfg(name)
    full = cfg.to_dict() if cfg is not None else {}
    kept = {key: full[key] for key in CFG_KEYS if full.get(key) not in (None, "")}
    as_stored: dict[str, Any] = json.loads(json.dumps(kept))  # tuples become lists
    return as_stored


def timm_cfgs() -> dict[str, dict[str, Any]]:
    """The :data:`CFG_KEYS` of each entry's default pretrained config, read from timm itself."""
    return {name: _live_cfg(name) for name, *_ in _TIMM}


def write_cfgs() -> Path:
    """Rewrite ``timm_cfgs.json`` from the installed timm; returns its path."""
    CFG_FILE.write_text(json.dumps(timm_cfgs(), indent=1) + "\n", encoding="utf-8")
    _stored_cfgs.cache_clear()
    return CFG_FILE


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


if __name__ == "__main__":
    print(f"wrote {write_cfgs()}")
