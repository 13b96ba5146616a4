"""Fast CPU path: train on cached features of the frozen first backbone blocks.

The stem and ``blocks[:upto]`` of an ImageNet EfficientNet-Lite0 are frozen anyway (frozen
BatchNorm, no gradients), so their outputs for an image never change. They are computed once,
for ``views`` versions of every training image (view 0 plain, the others through the box-aware
augmentation), stored as float16, and each epoch trains only the remaining blocks, the FPN and
the FCOS head on a random view of each image. The saved model is the ordinary full detector:
inference runs the whole network and never sees the cache.

Memory: about 0.14 MB per view of a 256-pixel image (1,000 images x 2 views: ~280 MB).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader
from torchvision.models.detection.image_list import ImageList

from imgrec.data.detection.augment import DetectionDataset, collate
from imgrec.engine.distributed import World, rank_batches, steps_per_epoch
from imgrec.errors import ConfigError
from imgrec.models.detectors import Detector

Targets = list[dict[str, torch.Tensor]]


class FeatureCache:
    """Frozen-prefix features of ``views`` versions of each training image, with their targets."""

    def __init__(
        self,
        det: Detector,
        datasets: list[DetectionDataset],
        upto: int,
        batch_size: int = 32,
        on_view: Callable[[int], None] | None = None,
    ) -> None:
        backbone = det.net.backbone
        if not hasattr(backbone, "prefix") or not hasattr(det.net, "compute_loss"):
            raise ConfigError(
                "cache_features needs the fcos detector on a timm backbone",
                hint="set cache_features=false",
            )
        self.upto = upto
        self.repeat_last = False
        self.levels: list[list[torch.Tensor]] = []  # per view: per level (N, C, h, w) float16
        self.targets: list[Targets] = []
        device = next(det.parameters()).device  # features are kept in CPU memory
        for v, dataset in enumerate(datasets):
            loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
            chunks: list[list[torch.Tensor]] = []
            targets: Targets = []
            with torch.no_grad():
                for images, batch_targets in loader:
                    if not batch_targets:
                        continue
                    outs = backbone.prefix(images.to(device), upto)
                    self.repeat_last = outs[-1] is outs[-2]  # the split is at a feature block
                    kept = outs[:-1] if self.repeat_last else outs
                    chunks.append([o.to(torch.float16).cpu().contiguous() for o in kept])
                    targets.extend(batch_targets)
            self.levels.append(
                [torch.cat([c[k] for c in chunks]) for k in range(len(chunks[0]))] if chunks else []
            )
            self.targets.append(targets)
            if on_view:
                on_view(v)
        self.n = len(self.targets[0])
        if any(len(t) != self.n for t in self.targets):
            raise ConfigError(
                "an image failed to decode in only some views", hint="fix the data report's files"
            )

    def __len__(self) -> int:
        return self.n

    def batches(
        self, batch_size: int, generator: torch.Generator, world: World | None = None
    ) -> Iterator[tuple[list[torch.Tensor], Targets]]:
        """One epoch: every image once, in random order, each from a random view; with a
        distributed ``world``, this rank's share of each global batch."""
        order = torch.randperm(self.n, generator=generator)
        views = torch.randint(0, len(self.levels), (self.n,), generator=generator)
        for idx in self._steps(order, batch_size, world or World()):
            feats = []
            for k in range(len(self.levels[0])):
                feats.append(
                    torch.stack([self.levels[int(views[i])][k][int(i)] for i in idx]).float()
                )
            if self.repeat_last:
                feats.append(feats[-1])
            yield feats, [self.targets[int(views[i])][int(i)] for i in idx]

    def _steps(self, order: torch.Tensor, batch_size: int, world: World) -> list[torch.Tensor]:
        if world.distributed:
            return rank_batches(order, batch_size, world)
        last = self.n - batch_size + 1 if self.n >= batch_size else 1  # full batches only
        return [order[start : start + batch_size] for start in range(0, last, batch_size)]

    def num_batches(self, batch_size: int, world: World | None = None) -> int:
        world = world or World()
        if world.distributed:
            return steps_per_epoch(self.n, batch_size, world)
        return max(1, self.n // batch_size)


def cached_loss(
    det: Detector, image_size: int, upto: int
) -> Callable[[list[torch.Tensor], Targets], dict[str, Any]]:
    """FCOS losses from cached prefix features (the steps of ``FCOS.forward`` after the stem)."""

    def loss(feats: list[torch.Tensor], targets: Targets) -> dict[str, Any]:
        net = det.net
        net.train()
        levels = list(net.backbone.suffix(feats, upto).values())
        head_outputs = net.head(levels)
        batch = len(targets)
        images = ImageList(
            torch.empty(batch, 3, image_size, image_size), [(image_size, image_size)] * batch
        )
        anchors = net.anchor_generator(images, levels)
        per_level = [x.size(2) * x.size(3) for x in levels]
        shifted = [{"boxes": t["boxes"], "labels": t["labels"] + det.label_offset} for t in targets]
        out: dict[str, Any] = net.compute_loss(shifted, head_outputs, anchors, per_level)
        return out

    return loss
