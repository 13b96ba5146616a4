"""Why is the EfficientNet-Lite0 fine-tune slow on a GPU? Epoch times of ``imgrec.train`` under
setting variants, and a PyTorch profiler table of one epoch of the default (gpu_check part b).

    python benchmarks/gpu_finetune_profile.py --mnist DIR [--out DIR]

Prints one JSON object; writes ``profile.txt`` (top kernels by device time) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from transfer import subset  # benchmarks/transfer.py (gpu_check uses it too)

VARIANTS: dict[str, dict[str, Any]] = {
    "default (deterministic, amp, channels_last)": {},
    "deterministic=false": {"deterministic": False},
    "amp=false channels_last=false": {"amp": False, "channels_last": False},
    "all three off": {"deterministic": False, "amp": False, "channels_last": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default="data/mnist5k")
    parser.add_argument("--out", default=".")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cuda", help="cpu: a smoke test of this script")
    args = parser.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from imgrec.tasks.classify.train import train

    work = Path(tempfile.mkdtemp(prefix="imgrec-ft-profile-"))
    data = subset(Path(args.mnist), work / "data", 50, 20)
    common = {"model": "efficientnet_lite0", "pretrained": True, "img_size": 96,
              "batch_size": 32, "augment": "none", "scheduler": "cosine", "freeze": "none",
              "lr": 1e-3, "device": args.device, "report": False, "quiet": True}  # fmt: skip
    report: dict[str, Any] = {"torch": torch.__version__, "variants": {}}
    for name, extra in VARIANTS.items():
        started = time.perf_counter()
        result = train(data, out=work / f"run-{len(report['variants'])}",
                       epochs=args.epochs, **{**common, **extra})  # fmt: skip
        report["variants"][name] = {
            "epoch_seconds": [h["seconds"] for h in result.history],
            "call_seconds": round(time.perf_counter() - started, 1),
        }
    cuda = args.device == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        train(data, out=work / "profiled", epochs=1, **common)
    by = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=by, row_limit=20)
    cpu_table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    (Path(args.out) / "profile.txt").write_text(table + "\n\n" + cpu_table + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
