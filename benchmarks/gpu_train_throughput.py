"""GPU fine-tuning throughput: ``imgrec.train`` vs timm's training recipe, same card, same data.

For each model (EfficientNet-Lite0, ResNet-50) at 224 px: train images/s over ``--epochs``
epochs of the same ImageFolder (mnist5k, upsampled by the transforms) and the val accuracy
reached, for

* ``imgrec``: ``imgrec.train`` (its recipe on CUDA: AMP, channels-last, the in-memory uint8
  cache), ``freeze=none``;
* ``timm_loop``: timm's own pieces as its ``train.py`` wires them -- ``create_dataset``,
  ``create_loader`` (with its CUDA prefetcher), ``create_optimizer_v2``, AMP (bf16 where the GPU
  has it), channels-last -- with the same batch, epochs, optimizer and learning rate;
* ``timm_train_py`` (with ``--timm-train PATH/train.py`` from a timm checkout: the script is not
  in the wheel): the real ``train.py`` on the same folder, its logged images/s.

Goal (issue 15): imgrec >= timm at equal accuracy. Prints one JSON object. On the GPU machine::

    python benchmarks/gpu_train_throughput.py --epochs 3            # ~5 min on one H200

``--tiny`` runs a few steps of a small setting on the CPU (what the test runs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from transfer import subset

MODELS = ("efficientnet_lite0", "resnet50")


def _imgrec(data: Path, out: Path, model: str, args: argparse.Namespace) -> dict[str, Any]:
    from imgrec.tasks.classify.train import train

    result = train(str(data), out=out, model=model, img_size=args.img_size, epochs=args.epochs,
                   batch_size=args.batch, pretrained=False, freeze="none", augment="none",
                   optimizer="adamw", lr=args.lr, scheduler="cosine", device=args.device,
                   report=False, quiet=True)  # fmt: skip
    n_train = result.metrics.get("n_train") or _count(data / "train")
    seconds = sum(h["seconds"] for h in result.history)
    return {"images_per_s": round(n_train * args.epochs / seconds, 1),
            "accuracy": result.metrics["accuracy"]}  # fmt: skip


def _count(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def _timm_loop(data: Path, model_name: str, args: argparse.Namespace) -> dict[str, Any]:
    import timm
    import torch
    from timm.data import create_dataset, create_loader, resolve_data_config
    from timm.optim import create_optimizer_v2

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    train_set = create_dataset("", root=str(data / "train"), is_training=True)
    val_set = create_dataset("", root=str(data / "val"), is_training=False)
    model = timm.create_model(
        model_name, pretrained=False, num_classes=len(train_set.reader.class_to_idx)
    )
    model.to(device).to(memory_format=torch.channels_last)
    config = resolve_data_config({"input_size": (3, args.img_size, args.img_size)}, model=model)
    common = {"input_size": config["input_size"], "mean": config["mean"], "std": config["std"],
              "use_prefetcher": cuda, "device": device, "num_workers": args.workers}  # fmt: skip
    train_loader = create_loader(train_set, batch_size=args.batch, is_training=True,
                                 no_aug=True, **common)  # fmt: skip
    val_loader = create_loader(val_set, batch_size=args.batch, is_training=False, **common)
    optimizer = create_optimizer_v2(model, "adamw", lr=args.lr, weight_decay=0.05)
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    loss_fn = torch.nn.CrossEntropyLoss()
    seen, seconds = 0, 0.0
    for _ in range(args.epochs):
        model.train()
        started = time.perf_counter()
        for x, y in train_loader:
            x, y = x.to(device).contiguous(memory_format=torch.channels_last), y.to(device)
            with torch.autocast(device.type, dtype=dtype, enabled=cuda):
                loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(y)
        if cuda:
            torch.cuda.synchronize()
        seconds += time.perf_counter() - started
    model.eval()
    correct = total = 0
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=cuda):
        for x, y in val_loader:
            pred = model(x.to(device).contiguous(memory_format=torch.channels_last)).argmax(1)
            correct += int((pred.cpu() == y.cpu()).sum())
            total += len(y)
    return {"images_per_s": round(seen / seconds, 1), "accuracy": correct / max(total, 1),
            "images": seen}  # fmt: skip


def _timm_train_py(script: str, data: Path, model: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, script, str(data), "--train-split", "train", "--val-split", "val",
               "--model", model, "--img-size", str(args.img_size), "-b", str(args.batch),
               "--epochs", str(args.epochs), "--opt", "adamw", "--lr", str(args.lr), "--amp",
               "--channels-last", "--num-classes", str(len(list((data / "train").iterdir()))),
               "-j", str(args.workers), "--output", tempfile.mkdtemp()]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    rates = [float(r) for r in re.findall(r"Time:.*?([\d.]+)/s", done.stderr + done.stdout)]
    top1 = re.findall(r"Acc@1:\s*([\d.]+)", done.stderr + done.stdout)
    return {"returncode": done.returncode, "images_per_s": rates[-1] if rates else None,
            "accuracy": float(top1[-1]) / 100 if top1 else None}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=os.path.join(tempfile.gettempdir(), "imgrec-mnist5k"))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--timm-train", default="", help="timm's train.py (a timm checkout)")
    parser.add_argument("--tiny", action="store_true", help="a few CPU steps (the test)")
    args = parser.parse_args()
    per_class, val_per_class = 100, 20
    if args.tiny:  # resnet18 at 32 px: EfficientNet's depthwise backward takes seconds on a CPU
        args.device, args.img_size, args.batch, args.epochs, args.workers = "cpu", 32, 4, 1, 0
        per_class, val_per_class, args.models = 2, 1, "resnet18"

    import torch

    from imgrec.data.samples import write_sample

    write_sample("mnist5k", args.mnist, progress=False)
    work = Path(tempfile.mkdtemp(prefix="imgrec-gpu-throughput-"))
    data = subset(Path(args.mnist), work / "data", per_class, val_per_class)
    report: dict[str, Any] = {
        "benchmark": "gpu_train_throughput",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "settings": {k: v for k, v in vars(args).items() if k != "mnist"},
        "train_images": _count(data / "train"),
        "models": {},
    }
    for model in args.models.split(","):
        row = {"imgrec": _imgrec(data, work / f"imgrec-{model}", model, args),
               "timm_loop": _timm_loop(data, model, args)}  # fmt: skip
        if args.timm_train:
            row["timm_train_py"] = _timm_train_py(args.timm_train, data, model, args)
        row["ratio_imgrec_vs_timm_loop"] = round(
            row["imgrec"]["images_per_s"] / row["timm_loop"]["images_per_s"], 3
        )
        report["models"][model] = row
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
