"""Training batches streamed from tar shards: each rank and DataLoader worker reads its shards.

The shards of a split are dealt to the ranks once (``shards[rank::world]``, so a rank's
node-local cache stays useful across epochs) and, each epoch, in a seeded new order to the
rank's DataLoader workers; samples pass through a seeded shuffle buffer::

    batches = StreamBatches(index.shards("train"), pre, batch_size=64, world=world,
                            cache=ShardCache(folder, 2 * 1024**3), generator=generator)
    for x, y in batches: ...                 # x float (B, 3, S, S), this rank's share

DDP needs every rank to take the same number of steps, so a training epoch is a fixed number
of samples per rank, ``total // world`` (split evenly among the workers): a rank whose shards
hold more stops there (which samples are left out changes with the epoch's order), one whose
shards hold fewer starts over on its own shards. With equal shards dealt evenly (the writer
cuts equal shards) every sample is used once per epoch. Validation reads each shard once.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from torchvision.transforms import v2

from imgrec.data.images import decode_image
from imgrec.data.shards import Shard, ShardCache, read_shard
from imgrec.data.transforms import normalize_uint8, resize_ops
from imgrec.engine.distributed import World
from imgrec.errors import ConfigError, ImageError
from imgrec.models.card import Preprocessing

SHUFFLE_BUFFER = 1000  # samples held (encoded) per worker for the in-stream shuffle
Mixer = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def rank_shards(shards: Sequence[Shard], world: World) -> list[Shard]:
    """This rank's shards: every ``world.size``-th from ``world.rank``."""
    return list(shards[world.rank :: world.size])


def worker_quotas(samples: int, workers: int) -> list[int]:
    """``samples`` split as evenly as possible among ``workers``."""
    return [samples // workers + (w < samples % workers) for w in range(workers)]


def shuffled(items: Iterator[Any], size: int, rng: random.Random) -> Iterator[Any]:
    """``items`` in a shuffled order, holding at most ``size`` of them (WebDataset's buffer)."""
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        i = rng.randrange(len(buffer))
        buffer[i], item = item, buffer[i]
        yield item
    rng.shuffle(buffer)
    yield from buffer


class ShardSamples(IterableDataset):
    """``(uint8 image (3, S, S), label)`` from this rank's shards, split among the workers.

    ``per_rank``: samples each rank yields per epoch (cycling over its shards when they hold
    fewer); ``None`` reads each of its shards once. Set ``epoch`` before each pass.
    """

    def __init__(
        self,
        shards: Sequence[Shard],
        pre: Preprocessing,
        *,
        world: World,
        per_rank: int | None,
        cache: ShardCache,
        seed: int = 0,
        shuffle: bool = True,
        buffer: int = SHUFFLE_BUFFER,
        augment: v2.Transform | None = None,
    ) -> None:
        self.shards, self.world, self.per_rank = rank_shards(shards, world), world, per_rank
        self.pre, self.cache, self.augment = pre, cache, augment
        self.seed, self.shuffle, self.buffer = seed, shuffle, buffer
        self.resize = v2.Compose(resize_ops(pre))
        self.epoch = 0
        self.skipped = 0  # images that failed to decode (the quota is filled from the next)

    def _decode(self, data: bytes) -> torch.Tensor | None:
        try:
            x = v2.functional.pil_to_tensor(self.resize(decode_image(data)))
        except ImageError:
            self.skipped += 1
            return None
        return self.augment(x) if self.augment is not None else x

    def _my_shards(self, worker: int, workers: int) -> list[Shard]:
        order = list(self.shards)
        if self.shuffle:
            random.Random(f"{self.seed}-{self.epoch}-{self.world.rank}").shuffle(order)
        return order[worker::workers]

    def _encoded(self, shards: list[Shard], cycle: bool) -> Iterator[tuple[bytes, int]]:
        while True:
            seen = 0
            for shard in shards:
                with self.cache.open(shard) as stream:
                    for _, data, label in read_shard(stream):
                        seen += 1
                        yield data, label
            if not cycle or seen == 0:
                return  # read once, or shards without a sample: never loop forever

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        quota = None
        if self.per_rank is not None:
            quota = worker_quotas(self.per_rank, workers)[worker]
        source = self._encoded(self._my_shards(worker, workers), cycle=quota is not None)
        # the quota is taken before the shuffle: a buffer ahead of it would read on
        taken = source if quota is None else itertools.islice(source, quota)
        if self.shuffle:
            rng = random.Random(f"{self.seed}-{self.epoch}-{self.world.rank}-{worker}")
            taken = shuffled(taken, self.buffer, rng)
        for data, label in taken:
            x = self._decode(data)
            while x is None and quota is not None:  # a bad image: the next one stands in,
                spare = next(source, None)  # so every rank still takes the same steps
                if spare is None:
                    break
                data, label = spare
                x = self._decode(data)
            if x is not None:
                yield x, label


class StreamBatches:
    """Normalized ``(x, y)`` batches of this rank's share of a sharded split, per epoch.

    Training (``shuffle=True``) yields ``sum(ceil(quota_w / batch_size))`` batches on every
    rank; evaluation (``shuffle=False``) reads each of the rank's shards once, in order.
    """

    def __init__(
        self,
        shards: Sequence[Shard],
        pre: Preprocessing,
        *,
        batch_size: int,
        world: World,
        cache: ShardCache,
        shuffle: bool = True,
        augment: v2.Transform | None = None,
        mixer: Mixer | None = None,
        num_workers: int = 0,
        generator: torch.Generator | None = None,
        buffer: int = SHUFFLE_BUFFER,
    ) -> None:
        total = sum(s.count for s in shards)
        fewest = min(len(rank_shards(shards, World(r, world.size))) for r in range(world.size))
        if shuffle and fewest == 0:
            raise ConfigError(
                f"{len(shards)} shards cannot be shared by {world.size} processes",
                hint="write smaller shards (shard_samples) or use fewer processes",
            )
        # a worker without a shard of its own would yield nothing: no more workers than shards
        self.workers = max(0, min(num_workers, fewest)) if shuffle else num_workers
        self.per_rank = total // world.size if shuffle else None
        seed = int(torch.randint(0, 2**31, (1,), generator=generator)) if shuffle else 0
        self.samples = ShardSamples(
            shards, pre, world=world, per_rank=self.per_rank, cache=cache, seed=seed,
            shuffle=shuffle, buffer=buffer, augment=augment,
        )  # fmt: skip
        self.batch_size, self.pre, self.mixer = batch_size, pre, mixer

    def __len__(self) -> int:
        if self.per_rank is None:
            rank_total = sum(s.count for s in self.samples.shards)
            return -(-rank_total // self.batch_size)
        quotas = worker_quotas(self.per_rank, max(1, self.workers))
        return sum(-(-q // self.batch_size) for q in quotas)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        loader = DataLoader(
            self.samples,
            batch_size=self.batch_size,
            num_workers=self.workers,
            pin_memory=torch.cuda.is_available(),
        )
        for x, y in loader:
            xf = normalize_uint8(x, self.pre)
            if self.mixer is not None and len(y) > 1:
                xf, y = self.mixer(xf, y)
            yield xf, y
        self.samples.epoch += 1
