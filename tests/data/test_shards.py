"""Tar shards on a real (moto, loopback) S3 server: written, streamed per rank and worker,
through a local cache smaller than the dataset, and trained on."""

from __future__ import annotations

import sys
import tarfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from imgrec.data.dataset import load_classification_data
from imgrec.data.shards import ShardCache, read_index, read_shard, shard_dataset
from imgrec.engine.distributed import World
from imgrec.engine.stream import StreamBatches, rank_shards
from imgrec.errors import ConfigError
from imgrec.models.card import Preprocessing

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from train_fixtures import TINY, make_imagefolder

PRE = Preprocessing(input_size=16, resize_size=16, crop="none", interpolation="bilinear",
                    mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 3 classes x 40 train (120 images, 15 shards of 8) + 3 x 8 val
    return make_imagefolder(tmp_path_factory.mktemp("shards") / "data", n_train=40, n_val=8)


@pytest.fixture
def s3_shards(folder: Path, make_bucket) -> str:
    uri = f"s3://{make_bucket()}/set/shards"
    shard_dataset(load_classification_data(str(folder)), uri, shard_samples=8)
    return uri


def test_shards_are_webdataset_tars_with_every_image_once(s3_shards: str, tmp_path: Path) -> None:
    index = read_index(s3_shards)
    assert index.counts() == {"train": 120, "val": 24}
    assert [s.count for s in index.shards("train")] == [8] * 15
    assert index.class_counts["train"] == [40, 40, 40]
    labels = Counter(label for s in index.shards("train") for _, _, label in read_shard(s.uri))
    assert labels == {0: 40, 1: 40, 2: 40}
    # a plain tar: key.png + key.cls pairs, the layout webdataset reads
    from imgrec import storage

    local = tmp_path / "one.tar"
    local.write_bytes(storage.read_bytes(index.shards("val")[0].uri))
    with tarfile.open(local) as tar:
        names = tar.getnames()
    assert names[:2] == ["00000000.png", "00000000.cls"] and len(names) == 16


def _epoch_labels(batches: StreamBatches) -> tuple[int, list[int]]:
    steps, labels = 0, []
    for _, y in batches:
        steps += 1
        labels.extend(y.tolist())
    return steps, labels


def test_each_rank_and_worker_reads_only_its_shards(s3_shards: str) -> None:
    shards = read_index(s3_shards).shards("train")[:14]  # 7 shards of 8 for each rank
    expected = Counter(label for s in shards for _, _, label in read_shard(s.uri))
    opened: dict[int, list[str]] = {}

    class Recording(ShardCache):
        def open(self, shard):  # type: ignore[no-untyped-def]
            opened.setdefault(rank, []).append(shard.uri)
            return super().open(shard)

    steps, seen = [], Counter()
    for rank in (0, 1):
        world = World(rank=rank, size=2)
        cache = Recording("unused", 0)
        batches = StreamBatches(shards, PRE, batch_size=8, world=world, cache=cache)
        n, labels = _epoch_labels(batches)
        assert n == len(batches)
        steps.append(n)
        seen.update(labels)
        assert sorted(opened[rank]) == sorted(s.uri for s in rank_shards(shards, world))
    assert steps[0] == steps[1] == 7  # 56 images each, batches of 8: DDP steps agree
    assert seen == expected  # equal shards dealt evenly: every image once
    assert not set(opened[0]) & set(opened[1])


def test_uneven_shards_give_every_rank_the_same_steps(s3_shards: str) -> None:
    shards = read_index(s3_shards).shards("train")[:5]  # 3 shards for rank 0, 2 for rank 1
    lengths = []
    for rank in (0, 1):
        batches = StreamBatches(shards, PRE, batch_size=4, world=World(rank, 2),
                                cache=ShardCache("unused", 0))  # fmt: skip
        n, labels = _epoch_labels(batches)
        lengths.append((n, len(labels)))
    assert lengths == [(5, 20), (5, 20)]  # 40 // 2 each; rank 1 starts over on its 16
    with pytest.raises(ConfigError, match="cannot be shared by 6"):
        StreamBatches(shards, PRE, batch_size=4, world=World(0, 6), cache=ShardCache("x", 0))


def test_workers_split_a_rank_s_shards(s3_shards: str) -> None:
    shards = read_index(s3_shards).shards("train")[:14]  # 7 shards of 8 for each worker
    expected = Counter(label for s in shards for _, _, label in read_shard(s.uri))
    batches = StreamBatches(shards, PRE, batch_size=8, world=World(), num_workers=2,
                            cache=ShardCache("unused", 0), generator=torch.Generator())  # fmt: skip
    for _ in range(2):  # two epochs: a new shard order, the same steps
        n, labels = _epoch_labels(batches)
        assert (n, len(labels)) == (len(batches), 112) and Counter(labels) == expected


def test_training_streams_from_s3_through_a_cache_smaller_than_the_data(
    s3_shards: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgrec.tasks.classify.train import train

    monkeypatch.setenv("IMGREC_CACHE", str(tmp_path / "cache"))
    index = read_index(s3_shards)
    data_bytes = sum(s.bytes for split in index.splits.values() for s in split)
    allowance = 0.1  # MB of local disk: a fifth of the shards
    assert data_bytes > 5 * allowance * 1024**2
    peak = [0]
    stop = threading.Event()

    def size(path: Path) -> int:  # a .part file may be renamed or removed between list and stat
        try:
            return path.stat().st_size if path.is_file() else 0
        except FileNotFoundError:
            return 0

    def watch() -> None:  # the cache folder's size, as another process would see it
        while not stop.is_set():
            files = list((tmp_path / "cache").rglob("*"))
            peak[0] = max(peak[0], sum(size(f) for f in files))
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        options = {**TINY, "lr": 0.03, "num_workers": 0, "shard_cache_mb": allowance}
        result = train(s3_shards, out=tmp_path / "run", epochs=4, **options)
    finally:
        stop.set()
        watcher.join()
    assert 0 < peak[0] <= allowance * 1024**2
    assert result.metrics["n"] == 24 and result.metrics["accuracy"] >= 0.9
    assert (tmp_path / "run" / "model" / "model.json").is_file()


@pytest.mark.slow
def test_two_gloo_processes_train_on_their_own_s3_shards(
    s3_shards: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import os
    import subprocess

    monkeypatch.setenv("IMGREC_CACHE", str(tmp_path / "cache"))
    root = Path(__file__).parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable, "-m", "imgrec", "train", s3_shards, "--out", str(tmp_path / "run"),
        "--nproc", "2", "--epochs", "3", "--batch-size", "8", "--model", "small_resnet", "-q",
        "--set", "threads=1", "--set", "num_workers=1", "--set", "report=false",
        "--set", "shard_cache_mb=1",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("model:") == 1  # rank 0 alone writes
    history = [json.loads(x) for x in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert len(history) == 3 and history[-1]["val_accuracy"] >= 0.9
    # each rank cached only its own shards: 15 train shards dealt 8 / 7, 3 val shards 2 / 1
    cached = {r: sorted(p.name for p in (tmp_path / "cache" / "shards" / f"rank-{r}").iterdir())
              for r in (0, 1)}  # fmt: skip
    assert not set(cached[0]) & set(cached[1])
    assert len(cached[0]) == 10 and len(cached[1]) == 8
