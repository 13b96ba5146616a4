"""Forward throughput (images/s, inference mode) of registry architectures on this CPU.

Prints one JSON object. Timings on a shared machine are noisy: each figure is the best of
``--reps`` runs, and ``ratio_vs_resnet18`` (same run, same threads) is the comparable number.

    .venv/bin/python benchmarks/model_throughput.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from imgrec.models import build_model

CASES = (
    ("resnet18", 224, False),
    ("efficientnet_lite0", 224, False),
    ("efficientnet_lite0", 224, True),
    ("small_resnet", 28, False),
    ("small_resnet", 28, True),
)


def images_per_second(name: str, size: int, channels_last: bool, batch: int, reps: int) -> float:
    """Best-of-``reps`` forward throughput for one batch of random images."""
    torch.manual_seed(0)
    net = build_model(name, 10).eval()
    x = torch.randn(batch, 3, size, size)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    best = float("inf")
    with torch.inference_mode():
        net(x)  # warm-up
        for _ in range(reps):
            start = time.perf_counter()
            net(x)
            best = min(best, time.perf_counter() - start)
    return batch / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, size, cl in CASES:
        ips = images_per_second(name, size, cl, args.batch, args.reps)
        rows.append({"model": name, "size": size, "channels_last": cl, "images_per_s": ips})
    base = rows[0]["images_per_s"]
    for row in rows:
        row["ratio_vs_resnet18"] = round(row["images_per_s"] / base, 2)
        row["images_per_s"] = round(row["images_per_s"], 1)
    print(
        json.dumps(
            {
                "threads": args.threads,
                "batch": args.batch,
                "load_avg": os.getloadavg(),
                "results": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
