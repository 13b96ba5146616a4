"""Training batches from an in-memory uint8 cache (small datasets) or from files (large ones).

Decoding 4,000 PNGs every epoch is wasted work: a small dataset is decoded ONCE, resized with
the eval geometry, into a ``uint8 (N, 3, H, W)`` tensor; each epoch then shuffles indices,
augments whole batches and normalizes them exactly as ``eval_transform`` does::

    images, labels = decode_to_cache(records, pre)             # with a progress bar
    batches = TensorBatches(images, labels, pre, batch_size=128, augment=build_augment("light"))
    for x, y in batches: ...                                    # x float (B, 3, H, W)

Large datasets go through :class:`FileBatches` (a DataLoader over the files, with workers).
Both take a ``world``: in a distributed run each process gets its share of every batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from imgrec.data.transforms import normalize_uint8, resize_ops
from imgrec.engine.distributed import World, rank_batches, steps_per_epoch
from imgrec.engine.progress import item_progress
from imgrec.models.card import Preprocessing

Mixer = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def cache_bytes(n_images: int, input_size: int) -> int:
    """Memory an in-memory cache of ``n_images`` at ``input_size`` needs (uint8 RGB)."""
    return n_images * 3 * input_size * input_size


def load_uint8(path: str, pre: Preprocessing) -> torch.Tensor:
    """Decode one image (robust loader) and apply the eval geometry: ``uint8 (3, S, S)``."""
    from imgrec.data.images import load_image

    image = load_image(path)
    return v2.functional.pil_to_tensor(v2.Compose(resize_ops(pre))(image))


def decode_to_cache(
    paths: Sequence[str], pre: Preprocessing, *, what: str = "images", quiet: bool = False
) -> torch.Tensor:
    """Decode ``paths`` once into ``uint8 (N, 3, S, S)``, showing progress."""
    size = pre.input_size
    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    with item_progress(f"decoding {what}", quiet=quiet) as progress:
        task = progress.add_task("decode", total=len(paths))
        # Pillow releases the GIL while decoding: threads use every core.
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            for i, image in enumerate(pool.map(lambda p: load_uint8(p, pre), paths)):
                out[i] = image
                progress.advance(task)
    return out


def sample_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-sample weights inversely proportional to class frequency (balanced sampling)."""
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).double()
    return (1.0 / counts)[labels]


def epoch_order(
    n: int,
    *,
    shuffle: bool,
    weights: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One epoch's sample order: weighted draws (balanced), a permutation, or ``0..n-1``.
    Every rank of a distributed run draws the same order from the same seed."""
    if weights is not None:
        return torch.multinomial(weights, n, replacement=True, generator=generator)
    if shuffle:
        return torch.randperm(n, generator=generator)
    return torch.arange(n)


class RankBatchSampler:
    """A DataLoader ``batch_sampler``: this rank's indices of each step (see
    :func:`~imgrec.engine.distributed.rank_batches`)."""

    def __init__(self, n: int, batch_size: int, world: World, **order: Any) -> None:
        self.n, self.batch_size, self.world, self.order = n, batch_size, world, order

    def __len__(self) -> int:
        return steps_per_epoch(self.n, self.batch_size, self.world)

    def __iter__(self) -> Iterator[list[int]]:
        order = epoch_order(self.n, **self.order)
        for idx in rank_batches(order, self.batch_size, self.world):
            yield idx.tolist()


class TensorBatches:
    """Shuffled, augmented, normalized batches from a uint8 image tensor held in memory."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        pre: Preprocessing,
        *,
        batch_size: int,
        shuffle: bool = True,
        augment: v2.Transform | None = None,
        mixer: Mixer | None = None,
        balanced: bool = False,
        num_classes: int = 0,
        generator: torch.Generator | None = None,
        world: World | None = None,
    ) -> None:
        self.images, self.labels, self.pre = images, labels, pre
        self.augment, self.mixer = augment, mixer
        weights = sample_weights(labels, num_classes) if balanced else None
        self.sampler = RankBatchSampler(
            len(labels), batch_size, world or World(),
            shuffle=shuffle, weights=weights, generator=generator,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in self.sampler:
            x = self.images[idx]  # (B, 3, S, S) uint8
            if self.augment is not None:
                x = self.augment(x)
            xf, y = normalize_uint8(x, self.pre), self.labels[idx]
            if self.mixer is not None and len(idx) > 1:
                xf, y = self.mixer(xf, y)
            yield xf, y


class _FileDataset(Dataset):
    # Augmentation runs here, per image, so DataLoader workers share the work.
    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int],
        pre: Preprocessing,
        augment: v2.Transform | None,
    ) -> None:
        self.paths, self.labels, self.pre, self.augment = list(paths), list(labels), pre, augment

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = load_uint8(self.paths[i], self.pre)
        return (self.augment(x) if self.augment is not None else x), self.labels[i]


class FileBatches:
    """Batches decoded from files by a DataLoader each epoch (datasets too big for memory)."""

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int],
        pre: Preprocessing,
        *,
        batch_size: int,
        shuffle: bool = True,
        augment: v2.Transform | None = None,
        mixer: Mixer | None = None,
        balanced: bool = False,
        num_classes: int = 0,
        num_workers: int = 0,
        generator: torch.Generator | None = None,
        world: World | None = None,
    ) -> None:
        self.pre, self.mixer = pre, mixer
        weights = sample_weights(torch.as_tensor(list(labels)), num_classes) if balanced else None
        self.loader = DataLoader(
            _FileDataset(paths, labels, pre, augment),
            batch_sampler=RankBatchSampler(
                len(paths),
                batch_size,
                world or World(),
                shuffle=shuffle,
                weights=weights,
                generator=generator,
            ),
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            xf = normalize_uint8(x, self.pre)
            if self.mixer is not None and len(y) > 1:
                xf, y = self.mixer(xf, y)
            yield xf, y
