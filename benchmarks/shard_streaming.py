"""Benchmark: training images/s streaming tar shards from S3 vs reading a local ImageFolder.

The same images (mnist5k by default) as a local ImageFolder and as WebDataset shards on an S3
server (moto in server mode, its own process, on loopback), the same recipe, the same workers:

* ``loader``: one pass over the train split's batches, no model (the data path alone);
* ``train``: ``imgrec.train`` for ``--epochs`` epochs; images/s = train images x epochs / the
  epochs' seconds (validation included, ~20% of the images).

The ImageFolder baseline reads files each epoch (``cache_images=false``, the path a dataset too
big for memory takes); shards are streamed without a local cache (``shard_cache_mb=0``: every
epoch GETs every shard again, the worst case). Runs alternate, ``--repeats`` times; medians.
Prints one JSON object (with CPU model and load average).

    .venv/bin/python benchmarks/shard_streaming.py [--epochs 2] [--repeats 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Model name" in ln), "")


def _moto(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("the moto server did not start")


def _loader_rate(batches: Any) -> float:
    started, n = time.perf_counter(), 0
    for _, y in batches:
        n += len(y)
    return n / (time.perf_counter() - started)


def _loaders(folder: str, shards: str, workers: int) -> tuple[Any, Any]:
    import torch

    from imgrec.data.dataset import load_classification_data
    from imgrec.data.shards import ShardCache, read_index
    from imgrec.engine.batches import FileBatches
    from imgrec.engine.distributed import World
    from imgrec.engine.stream import StreamBatches
    from imgrec.models.architectures import ARCHITECTURES

    data = load_classification_data(folder, scan=False)
    pre = ARCHITECTURES.get("small_resnet").default_preprocessing(28)
    train = data.splits["train"]
    files = FileBatches([r.path for r in train], [r.label for r in train], pre, batch_size=128,
                        num_workers=workers, generator=torch.Generator())  # fmt: skip
    stream = StreamBatches(read_index(shards).shards("train"), pre, batch_size=128,
                           world=World(), cache=ShardCache("unused", 0), num_workers=workers,
                           generator=torch.Generator())  # fmt: skip
    return files, stream


def _train_rate(data: str, out: Path, epochs: int, workers: int, extra: dict) -> dict:
    from imgrec.tasks.classify.train import train

    result = train(data, out=out, epochs=epochs, quiet=True, report=False, num_workers=workers,
                   model="small_resnet", **extra)  # fmt: skip
    seconds = sum(h["seconds"] for h in result.history)
    return {"seconds": seconds, "accuracy": result.metrics["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "imgrec-mnist5k"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-samples", type=int, default=500)
    args = parser.parse_args()
    from imgrec.data.samples import write_sample

    write_sample("mnist5k", args.data, progress=False)
    port = _free_port()
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"})  # fmt: skip
    server = _moto(port)
    try:
        report = _bench(args)
    finally:
        server.terminate()
        server.wait()
    print(json.dumps(report, indent=1))


def _bench(args: argparse.Namespace) -> dict[str, Any]:
    from imgrec import storage
    from imgrec.data.dataset import load_classification_data
    from imgrec.data.shards import read_index, shard_dataset

    load_before = os.getloadavg()
    storage.s3_client().create_bucket(Bucket="bench")
    shards = "s3://bench/mnist5k/shards"
    started = time.perf_counter()
    shard_dataset(load_classification_data(args.data, scan=False), shards,
                  shard_samples=args.shard_samples)  # fmt: skip
    write_seconds = time.perf_counter() - started
    index = read_index(shards)
    files, stream = _loaders(args.data, shards, args.workers)
    loader: dict[str, list[float]] = {"imagefolder": [], "s3_shards": []}
    for _ in range(args.repeats):
        loader["imagefolder"].append(_loader_rate(files))
        loader["s3_shards"].append(_loader_rate(stream))
    n_images = index.counts()["train"] + index.counts()["val"]
    train_rates: dict[str, list[float]] = {"imagefolder": [], "s3_shards": []}
    accuracy: dict[str, list[float]] = {"imagefolder": [], "s3_shards": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for name, data, extra in (("imagefolder", args.data, {"cache_images": False}),
                                      ("s3_shards", shards, {"shard_cache_mb": 0})):  # fmt: skip
                run = _train_rate(data, Path(tmp) / f"{name}-{i}", args.epochs, args.workers, extra)
                train_rates[name].append(index.counts()["train"] * args.epochs / run["seconds"])
                accuracy[name].append(run["accuracy"])
    med = {k: statistics.median(v) for k, v in train_rates.items()}
    med_loader = {k: statistics.median(v) for k, v in loader.items()}
    return {
        "benchmark": "shard_streaming",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "images": n_images,
        "shards": {s: len(v) for s, v in index.splits.items()},
        "shard_bytes": sum(s.bytes for v in index.splits.values() for s in v),
        "write_shards_seconds": round(write_seconds, 2),
        "workers": args.workers,
        "epochs": args.epochs,
        "loader_images_per_s": {k: [round(x, 1) for x in v] for k, v in loader.items()},
        "loader_ratio_shards_vs_folder": round(
            med_loader["s3_shards"] / med_loader["imagefolder"], 3
        ),
        "train_images_per_s": {k: [round(x, 1) for x in v] for k, v in train_rates.items()},
        "train_ratio_shards_vs_folder": round(med["s3_shards"] / med["imagefolder"], 3),
        "accuracy": accuracy,
        "goal": ">= 0.9",
    }


if __name__ == "__main__":
    main()
