"""The frozen-backbone fast path: compute pooled features once, then train only the head.

With a frozen backbone (BatchNorm in eval mode) the pooled features of an image never change,
so computing them every epoch is wasted work. They are computed once per (architecture,
weights, preprocessing, dataset, split), stored as safetensors under the cache directory
(``$IMGREC_CACHE/features``, default ``~/.cache/imgrec/features``), and the head trains on
them at thousands of images per second::

    key = feature_key(arch="efficientnet_lite0", weights="imagenet", pre=pre,
                      fingerprint=data.fingerprint, split="train")
    feats, labels = cached_features(net, paths, labels, pre, key=key)   # (N, D), (N,)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from imgrec.engine.distributed import World
from imgrec.engine.progress import item_progress
from imgrec.models.card import Preprocessing
from imgrec.models.transfer import features
from imgrec.storage import cache_folder, write_bytes


def cache_dir() -> Path:
    """Where feature caches live: ``$IMGREC_CACHE/features`` (default ``~/.cache/imgrec``)."""
    return cache_folder("features")


# Bumped when how pixels become features changes without a visible setting (2: the one-step
# resize + center crop), so caches from before are recomputed rather than reused.
FEATURE_CACHE_VERSION = 2


def feature_key(**parts: Any) -> str:
    """A stable hash of everything that determines the features (model, weights, data, the
    device type: a GPU's TF32 convolutions give slightly different features)."""
    versioned = {**parts, "_version": FEATURE_CACHE_VERSION}
    canonical = json.dumps(versioned, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _batches(paths: Sequence[str], pre: Preprocessing, batch_size: int) -> Iterator[torch.Tensor]:
    from imgrec.data.transforms import normalize_uint8
    from imgrec.engine.batches import load_uint8

    for start in range(0, len(paths), batch_size):
        chunk = [load_uint8(p, pre) for p in paths[start : start + batch_size]]
        yield normalize_uint8(torch.stack(chunk), pre)


@torch.no_grad()
def compute_features(
    model: nn.Module,
    paths: Sequence[str],
    pre: Preprocessing,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    quiet: bool = False,
) -> torch.Tensor:
    """Pooled features of every image, ``float32 (N, D)``, with a progress bar."""
    was_training = model.training
    model.eval()
    parts = []
    with item_progress("computing features", quiet=quiet) as progress:
        task = progress.add_task("features", total=len(paths))
        for x in _batches(paths, pre, batch_size):
            parts.append(features(model, x.to(device)).float().cpu())
            progress.advance(task, len(x))
    model.train(was_training)
    if not parts:
        return torch.empty(0, 0)
    return torch.cat(parts)


def cached_features(
    model: nn.Module,
    paths: Sequence[str],
    labels: Sequence[int],
    pre: Preprocessing,
    *,
    key: str,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    quiet: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels for ``paths``: read from the cache under ``key`` or computed once."""
    from safetensors.torch import load_file, save

    path = cache_dir() / f"{key}.safetensors"
    label_tensor = torch.as_tensor(list(labels), dtype=torch.int64)
    if path.is_file():
        try:
            stored = load_file(str(path))
            if stored["labels"].shape == label_tensor.shape and torch.equal(
                stored["labels"], label_tensor
            ):
                return stored["features"], label_tensor
        except Exception:  # a damaged cache file is recomputed, never trusted
            pass
    feats = compute_features(model, paths, pre, batch_size=batch_size, device=device, quiet=quiet)
    blob = save({"features": feats.contiguous(), "labels": label_tensor})
    write_bytes(path, blob)
    return feats, label_tensor


class FeatureBatches:
    """Shuffled batches of cached features ``(B, D)`` and labels, for training a head."""

    def __init__(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
        world: World | None = None,
    ) -> None:
        from imgrec.engine.batches import RankBatchSampler

        self.features, self.labels = features, labels
        self.sampler = RankBatchSampler(
            len(labels), batch_size, world or World(), shuffle=shuffle, generator=generator
        )

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in self.sampler:
            yield self.features[idx], self.labels[idx]
