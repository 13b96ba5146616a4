"""Building what one classification training run needs: network, batches, validation, saving.

Two paths share the engine loop:

* **pixels**: the network trains on image batches (an in-memory uint8 cache for small
  datasets, a DataLoader over files for big ones), with augmentation and MixUp/CutMix;
* **features**: with a frozen backbone, pooled features are computed once (and cached on
  disk) and only the head trains on them (see :mod:`imgrec.engine.feature_cache`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn

from imgrec.config import TrainConfig
from imgrec.data.augment import batch_mixer, build_augment
from imgrec.data.dataset import ClassificationData
from imgrec.data.shards import ShardCache, ShardIndex
from imgrec.engine.batches import FileBatches, TensorBatches, cache_bytes, decode_to_cache
from imgrec.engine.distributed import World
from imgrec.engine.feature_cache import FeatureBatches, cached_features, feature_key
from imgrec.engine.stream import StreamBatches
from imgrec.errors import ConfigError
from imgrec.models.architectures import ARCHITECTURES, build_model
from imgrec.models.card import Preprocessing
from imgrec.models.transfer import freeze, head, train_mode
from imgrec.storage import cache_folder

CACHE_LIMIT_BYTES = 2 * 1024**3
EVAL_BATCH = 256


@dataclass
class Session:
    """The trainable module (``trained``: the network, or only its head) and its data."""

    network: nn.Module
    trained: nn.Module
    pre: Preprocessing
    train_batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
    validate: Callable[[nn.Module], dict[str, float]]
    train_mode: Callable[[nn.Module], Any]
    channels_last: bool


def _paths_labels(data: ClassificationData, split: str) -> tuple[list[str], list[int]]:
    records = data.splits.get(split) or []
    return [r.path for r in records], [r.label for r in records]


def build_network(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """The architecture with a ``num_classes`` head, pretrained or from ``cfg.weights``."""
    pretrained: bool | str = cfg.weights or bool(cfg.pretrained)
    assert cfg.model is not None
    return build_model(cfg.model, num_classes, pretrained=pretrained, **cfg.arch_kwargs)


def _card_beside(weights: str) -> Any:
    """The model card of the model directory holding ``weights``, or ``None``."""
    from imgrec import storage
    from imgrec.models.card import read_card

    folder = storage.parent(weights)
    if not storage.exists(storage.join(folder, "model.json")):
        return None
    return read_card(folder)


def preprocessing(cfg: TrainConfig, images: torch.Tensor | None) -> Preprocessing:
    """Eval preprocessing: the pretrained weights' for transfer, data statistics from scratch."""
    spec = ARCHITECTURES.get(cfg.model or "")
    assert cfg.img_size is not None
    base = spec.default_preprocessing(cfg.img_size)
    if cfg.weights:  # weights from a model directory carry their preprocessing (warm start)
        card = _card_beside(cfg.weights)
        if card is not None and card.preprocessing.input_size == cfg.img_size:
            return card.preprocessing
    if cfg.pretrained or cfg.weights or images is None or not len(images):
        return base
    sample = images[:: max(1, len(images) // 2000)].float() / 255.0  # (n, 3, S, S)
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp(min=1e-3)
    return Preprocessing(
        input_size=base.input_size,
        resize_size=base.resize_size,
        crop=base.crop,
        interpolation=base.interpolation,
        mean=(round(float(mean[0]), 4), round(float(mean[1]), 4), round(float(mean[2]), 4)),
        std=(round(float(std[0]), 4), round(float(std[1]), 4), round(float(std[2]), 4)),
    )


def _accuracy_and_loss(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> dict[str, float]:
    """Val loss and accuracy of ``batches`` (this rank's shard), with ``val_n`` images."""
    total, correct, loss = 0, 0, 0.0
    for x, y in batches:
        logits = model(x.to(device)).float()
        y = y.to(device)
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        total += len(y)
    mean_loss, accuracy = loss / max(total, 1), correct / max(total, 1)
    return {"val_loss": mean_loss, "val_accuracy": accuracy, "val_n": float(total)}


def _loader_workers(cfg: TrainConfig) -> int:
    """DataLoader worker processes: ``num_workers``, else one per core up to 4."""
    return cfg.num_workers if cfg.num_workers is not None else min(4, os.cpu_count() or 1)


def _whole_network(
    cfg: TrainConfig, network: nn.Module, pre: Preprocessing, train_batches: Any,
    val_batches: Any, device: torch.device,
) -> Session:  # fmt: skip
    """The session that trains the whole network on image batches (pixels or shards)."""
    network.to(device)
    if cfg.channels_last:
        network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return Session(
        network=network,
        trained=network,
        pre=pre,
        train_batches=train_batches,
        validate=lambda m: _accuracy_and_loss(m, val_batches, device),
        train_mode=train_mode,
        channels_last=bool(cfg.channels_last),
    )


def pixel_session(
    cfg: TrainConfig, data: ClassificationData, device: torch.device, generator: torch.Generator,
    console: Console, world: World | None = None,
) -> Session:  # fmt: skip
    """Train the network on pixels (in-memory cache or files); with ``world``, this rank's
    share of each train and val batch."""
    world = world or World()
    network = build_network(cfg, len(data.classes))
    freeze(network, cfg.freeze or "none")
    train_paths, train_labels = _paths_labels(data, "train")
    val_paths, val_labels = _paths_labels(data, "val")
    size = cfg.img_size or 0
    in_memory = cfg.cache_images
    if in_memory is None:
        in_memory = cache_bytes(len(train_paths) + len(val_paths), size) <= CACHE_LIMIT_BYTES
    base_pre = ARCHITECTURES.get(cfg.model or "").default_preprocessing(size)
    augment = build_augment(cfg.augment or "none", size)
    mixer = batch_mixer(
        len(data.classes), mixup_alpha=cfg.mixup_alpha, cutmix_alpha=cfg.cutmix_alpha
    )
    assert cfg.batch_size is not None
    common: dict[str, Any] = {
        "batch_size": cfg.batch_size,
        "augment": augment,
        "mixer": mixer,
        "balanced": cfg.balanced_sampler,
        "num_classes": len(data.classes),
        "generator": generator,
        "world": world,
    }
    train_batches: Any
    if in_memory:
        quiet = console.quiet
        images = decode_to_cache(train_paths, base_pre, what="train images", quiet=quiet)
        val_images = decode_to_cache(val_paths, base_pre, what="val images", quiet=quiet)
        pre = preprocessing(cfg, images)
        labels = torch.as_tensor(train_labels, dtype=torch.int64)
        train_batches = TensorBatches(images, labels, pre, **common)
        val_batches: Any = TensorBatches(
            val_images, torch.as_tensor(val_labels), pre, batch_size=EVAL_BATCH, shuffle=False,
            world=world,
        )  # fmt: skip
    else:
        pre = preprocessing(cfg, None)
        workers = _loader_workers(cfg)
        train_batches = FileBatches(train_paths, train_labels, pre, num_workers=workers, **common)
        val_batches = FileBatches(
            val_paths, val_labels, pre, batch_size=EVAL_BATCH, shuffle=False,
            num_workers=workers, world=world,
        )  # fmt: skip
    return _whole_network(cfg, network, pre, train_batches, val_batches, device)


def stream_session(
    cfg: TrainConfig, data: ShardIndex, device: torch.device, generator: torch.Generator,
    console: Console, world: World | None = None,
) -> Session:  # fmt: skip
    """Train the network on images streamed from tar shards (``s3://`` or a folder): each
    rank reads only its shards, through a local cache of at most ``shard_cache_mb``."""
    world = world or World()
    if cfg.balanced_sampler:
        raise ConfigError(
            "balanced_sampler needs random access to the images, not shards",
            hint="set balanced_sampler=false or class_weights=balanced",
        )
    network = build_network(cfg, len(data.classes))
    freeze(network, cfg.freeze or "none")
    assert cfg.batch_size is not None and cfg.img_size is not None
    pre = preprocessing(cfg, None)
    cache = ShardCache(
        cache_folder("shards") / f"rank-{world.rank}", int((cfg.shard_cache_mb or 0) * 1024**2)
    )
    workers = _loader_workers(cfg)
    common: dict[str, Any] = {"world": world, "cache": cache, "num_workers": workers}
    train_batches = StreamBatches(
        data.shards("train"), pre, batch_size=cfg.batch_size, generator=generator,
        augment=build_augment(cfg.augment or "none", cfg.img_size),
        mixer=batch_mixer(
            len(data.classes), mixup_alpha=cfg.mixup_alpha, cutmix_alpha=cfg.cutmix_alpha
        ),
        buffer=cfg.shuffle_buffer, **common,
    )  # fmt: skip
    val_batches = StreamBatches(
        data.shards("val"), pre, batch_size=EVAL_BATCH, shuffle=False, **common
    )
    return _whole_network(cfg, network, pre, train_batches, val_batches, device)


def feature_session(
    cfg: TrainConfig, data: ClassificationData, device: torch.device, generator: torch.Generator,
    console: Console, world: World | None = None,
) -> Session:  # fmt: skip
    """Frozen backbone: features computed once (disk-cached), only the head trains."""
    world = world or World()
    if cfg.augment not in (None, "none") or cfg.mixup_alpha or cfg.cutmix_alpha:
        raise ConfigError(
            "the feature cache cannot be combined with augmentation or MixUp/CutMix",
            hint="set augment=none, or feature_cache=false to train through the frozen backbone",
        )
    network = build_network(cfg, len(data.classes)).to(device)
    freeze(network, "backbone")
    network.eval()
    pre = preprocessing(cfg, None)
    weights_id = cfg.weights or ("pretrained" if cfg.pretrained else f"random-seed{cfg.seed}")
    feats = {}
    for split in ("train", "val"):
        paths, labels = _paths_labels(data, split)
        key = feature_key(
            arch=cfg.model, arch_kwargs=cfg.arch_kwargs, weights=weights_id,
            pre=pre.to_dict(), fingerprint=data.fingerprint, split=split,
            device=torch.device(device).type,
        )  # fmt: skip
        feats[split] = cached_features(
            network, paths, labels, pre, key=key, device=device, quiet=console.quiet
        )
    head_module = head(network)
    assert cfg.batch_size is not None
    train_batches = FeatureBatches(
        *feats["train"], batch_size=cfg.batch_size, generator=generator, world=world
    )
    val_batches = FeatureBatches(*feats["val"], batch_size=4096, shuffle=False, world=world)
    return Session(
        network=network,
        trained=head_module,
        pre=pre,
        train_batches=train_batches,
        validate=lambda m: _accuracy_and_loss(m, val_batches, device),
        train_mode=lambda m: m.train(),
        channels_last=False,
    )
