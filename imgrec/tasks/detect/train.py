"""``train(data, **options)`` for object detection: data -> RUN_DIR with the model directory.

The loop is detection-shaped (targets are lists of boxes), so it is its own small function;
checkpoints, seeding, the optimizer and the history file come from ``imgrec.engine``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from imgrec.data.detection import DetectionData, boxes_summary, load_detection_data
from imgrec.data.detection.augment import DetectionDataset, collate, train_transform
from imgrec.errors import ConfigError, DatasetError
from imgrec.models.card import IMAGENET_MEAN, IMAGENET_STD, ModelCard, Preprocessing, save_model_dir
from imgrec.models.detectors import Detector, build_detector
from imgrec.tasks.detect.recipe import DetectConfig, make_config

Targets = list[dict[str, torch.Tensor]]
LossFn = Callable[[Any, Targets], dict[str, torch.Tensor]]


@dataclass
class TrainResult:
    """What ``train`` produced (design: ``run_dir``, ``model_dir``, ``metrics``, ``history``)."""

    run_dir: str
    model_dir: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def _split_val(data: DetectionData, cfg: DetectConfig) -> None:
    if data.splits.get("val"):
        return
    records = list(data.splits.get("train", []))
    if len(records) < 2:
        raise DatasetError(
            f"{data.uri!r} has {len(records)} usable train images", hint="add labelled images"
        )
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    n_val = max(1, round(cfg.val_fraction * len(records)))
    data.splits["val"] = [records[i] for i in order[:n_val]]
    data.splits["train"] = [records[i] for i in order[n_val:]]


def preprocessing_for(cfg: DetectConfig) -> Preprocessing:
    """Detection preprocessing: the whole image squashed to ``img_size`` square (no crop)."""
    return Preprocessing(
        input_size=cfg.img_size,
        resize_size=cfg.img_size,
        crop="none",
        interpolation="bilinear",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


class _Schedule:
    """Warm-up then cosine; progress is steps done / planned, or time used / ``max_seconds``."""

    def __init__(
        self, opt: torch.optim.Optimizer, total_steps: int, warmup: int, max_seconds: float | None
    ) -> None:
        self.opt, self.total, self.warmup, self.max_seconds = (
            opt,
            max(1, total_steps),
            warmup,
            max_seconds,
        )
        self.base = [g["lr"] for g in opt.param_groups]
        self.start = time.perf_counter()

    def progress(self, step: int) -> float:
        p = step / self.total
        if self.max_seconds:
            p = max(p, (time.perf_counter() - self.start) / self.max_seconds)
        return min(p, 1.0)

    def set(self, step: int) -> float:
        factor = (
            (step + 1) / (self.warmup + 1)
            if step < self.warmup
            else 0.5 * (1 + math.cos(math.pi * self.progress(step)))
        )
        factor = max(factor, 0.01)
        for group, base in zip(self.opt.param_groups, self.base, strict=True):
            group["lr"] = base * factor
        return self.base[0] * factor


def train_epoch(
    batches: Iterable[tuple[Any, Targets]],
    loss_fn: LossFn,
    opt: torch.optim.Optimizer,
    sched: _Schedule,
    state: dict[str, Any],
    grad_clip: float,
) -> float:
    """One pass over ``batches``; returns the mean loss. Stops early when the schedule is done."""
    total, count = 0.0, 0
    params = [p for g in opt.param_groups for p in g["params"]]
    for inputs, targets in batches:
        if not targets:
            continue
        sched.set(state["step"])
        loss = sum(loss_fn(inputs, targets).values())
        assert isinstance(loss, torch.Tensor)
        if not torch.isfinite(loss):
            raise ConfigError(
                f"training diverged: loss is {float(loss)} at step {state['step']}",
                hint="lower the learning rate (--set lr=...)",
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        state["step"] += 1
        total, count = total + float(loss.detach()) * len(targets), count + len(targets)
        if sched.max_seconds and sched.progress(state["step"]) >= 1.0:
            state["out_of_time"] = True
            break
    return total / max(count, 1)


def _card(
    cfg: DetectConfig, data: DetectionData, metrics: dict[str, Any], pre: Preprocessing
) -> ModelCard:
    from imgrec.tasks.detect.evaluate import headline

    return ModelCard(
        architecture=cfg.model,
        classes=list(data.classes),
        preprocessing=pre,
        task="detect",
        arch_kwargs=cfg.arch_kwargs(),
        metrics=headline(metrics),
        dataset={"uri": data.uri, "format": data.format, "counts": data.counts()},
        config=cfg.to_dict(),
        weights={"pretrained": cfg.pretrained, "backbone": cfg.backbone},
    )


def train(
    data: str | Path,
    *,
    out: str | Path | None = None,
    config: Any = None,
    progress: bool = True,
    **options: Any,
) -> TrainResult:
    """Train a detector on ``data`` (COCO folder, YOLO ``data.yaml`` or VOC folder).

    Writes ``RUN_DIR/model/`` (best mAP50), ``last/``, ``checkpoint.pt``, ``config.yaml``,
    ``history.jsonl``, ``metrics.json``, ``data_report.json``, ``figures/`` and ``report.html``.

    Example::

        result = train("data/digits-detect", epochs=10, out="runs/digits")
        result.metrics["map50"]
    """
    from imgrec.engine.checkpoint import seed_everything
    from imgrec.tasks.detect.evaluate import evaluate_records, write_evaluation

    progress = progress and not options.pop("quiet", False)
    cfg = make_config(config, **_cli_options(options))
    torch.set_num_threads(_threads(cfg.threads))
    run_dir = Path(out or f"runs/detect-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(_yaml(cfg.to_dict()))
    generator = seed_everything(cfg.seed)
    dataset = load_detection_data(data)
    _split_val(dataset, cfg)
    pre = preprocessing_for(cfg)
    device = pick_device(cfg.device)
    det = build_detector(
        cfg.model, len(dataset.classes), pretrained=cfg.pretrained, **cfg.arch_kwargs()
    ).to(device)
    start = time.perf_counter()
    train_set = DetectionDataset(
        dataset.split("train"), train_transform(pre, cfg.augment, hflip=cfg.hflip)
    )
    epoch_batches, loss_fn, steps = _batches(det, train_set, cfg, pre, generator, progress)
    loss_fn = on_device(loss_fn, device)
    params = [p for p in det.parameters() if p.requires_grad]
    from imgrec.engine.optim import build_optimizer

    opt = build_optimizer("adamw", params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    budget = cfg.max_seconds - (time.perf_counter() - start) if cfg.max_seconds else None
    sched = _Schedule(opt, cfg.epochs * steps, cfg.warmup_steps, budget)
    state: dict[str, Any] = {"step": 0, "train_seconds": time.perf_counter() - start}
    history = _fit(
        det, epoch_batches, loss_fn, opt, sched, cfg, dataset, pre, run_dir, state, progress
    )
    metrics = evaluate_records(
        det, dataset.split("val"), dataset.classes, pre, score_threshold=cfg.score_threshold
    )
    cfg.score_threshold = metrics["score_threshold"]  # the card keeps the one chosen on val
    metrics["train_seconds"] = state["train_seconds"]
    history[-1].update(val_map=round(metrics["map"], 5), val_map50=round(metrics["map50"], 5))
    with (run_dir / "history.jsonl").open("w") as log:
        log.writelines(json.dumps(record) + "\n" for record in history)
    save_model_dir(det, _card(cfg, dataset, metrics, pre), run_dir / "model")
    _write_report(dataset, train_set, run_dir)
    write_evaluation(metrics, run_dir, history=history)
    return TrainResult(str(run_dir), str(run_dir / "model"), metrics, history)


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA when a GPU is visible, else CPU; ``cuda`` without one is a ``ConfigError``."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device=cuda was requested but no CUDA GPU is available", hint="--set device=cpu"
        )
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def on_device(loss_fn: LossFn, device: torch.device) -> LossFn:
    """``loss_fn`` with its inputs (a batch tensor or a list of feature maps) and targets moved
    to ``device`` (batches are built on the CPU)."""
    if device.type == "cpu":
        return loss_fn

    def loss(inputs: Any, targets: Targets) -> dict[str, torch.Tensor]:
        if isinstance(inputs, torch.Tensor):
            moved: Any = inputs.to(device, non_blocking=True)
        else:
            moved = [x.to(device, non_blocking=True) for x in inputs]
        on = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
        return loss_fn(moved, on)

    return loss


def _batches(
    det: Detector,
    train_set: DetectionDataset,
    cfg: DetectConfig,
    pre: Preprocessing,
    generator: torch.Generator,
    progress: bool,
) -> tuple[Callable[[], Iterable[tuple[Any, Targets]]], LossFn, int]:
    """(epoch -> batches, loss function, steps per epoch): images, or cached features."""
    if cfg.uses_cache():
        from imgrec.tasks.detect.cached import FeatureCache, cached_loss

        plain = DetectionDataset(train_set.records, train_transform(pre, "none"))
        views = [plain] + [train_set] * (cfg.cache_views - 1)
        cache = FeatureCache(
            det,
            views,
            cfg.cache_blocks,
            on_view=_report_view if progress else None,
        )
        train_set.bad.update(plain.bad)  # the data report lists files that failed in any view
        return (
            lambda: cache.batches(cfg.batch_size, generator),
            cached_loss(det, cfg.img_size, cfg.cache_blocks),
            cache.num_batches(cfg.batch_size),
        )
    loader = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        shuffle=True,
        collate_fn=collate,
        generator=generator,
        drop_last=len(train_set) > cfg.batch_size,
    )
    return (lambda: loader), det.loss, max(1, len(loader))


def _report_view(view: int) -> None:
    print(f"cached features of view {view + 1}", flush=True)


def _fit(
    det: Detector,
    epoch_batches: Callable[[], Iterable[tuple[Any, Targets]]],
    loss_fn: LossFn,
    opt: torch.optim.Optimizer,
    sched: _Schedule,
    cfg: DetectConfig,
    dataset: DetectionData,
    pre: Preprocessing,
    run_dir: Path,
    state: dict[str, Any],
    progress: bool,
) -> list[dict[str, Any]]:
    """Epochs of training with a quick mAP50 check; keeps the last model and a checkpoint."""
    from imgrec.engine.checkpoint import rng_state, save_checkpoint
    from imgrec.tasks.detect.evaluate import evaluate_records

    history: list[dict[str, Any]] = []
    with (run_dir / "history.jsonl").open("w") as log:
        for epoch in range(1, cfg.epochs + 1):
            start = time.perf_counter()
            loss = train_epoch(epoch_batches(), loss_fn, opt, sched, state, cfg.grad_clip)
            state["train_seconds"] += time.perf_counter() - start
            record: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": round(loss, 5),
                "lr": opt.param_groups[0]["lr"],
                "seconds": round(time.perf_counter() - start, 2),
            }
            last = epoch == cfg.epochs or state.get("out_of_time")
            if not last and cfg.val_every and epoch % cfg.val_every == 0:
                paused = time.perf_counter()
                quick = evaluate_records(
                    det, dataset.split("val"), dataset.classes, pre, crosscheck=False
                )
                record.update(val_map=round(quick["map"], 5), val_map50=round(quick["map50"], 5))
                sched.start += time.perf_counter() - paused  # validation is not training time
            history.append(record)
            log.write(json.dumps(record) + "\n")
            log.flush()
            if progress:
                print(" ".join(f"{k}={v}" for k, v in record.items()), flush=True)
            save_checkpoint(
                run_dir / "checkpoint.pt",
                {
                    "model": det.state_dict(),
                    "optimizer": opt.state_dict(),
                    "epoch": epoch,
                    "step": state["step"],
                    "rng": rng_state(),
                },
            )
            if last:
                break
    card = _card(cfg, dataset, {}, pre)
    save_model_dir(det, card, run_dir / "last")
    return history


def _cli_options(options: dict[str, Any]) -> dict[str, Any]:
    """Map the shared ``imgrec train`` flags onto ``DetectConfig`` (``--model auto``: default)."""
    options = dict(options)
    options.pop("task", None)
    if options.get("model") == "auto":
        options.pop("model")
    for flag, hint in (
        ("weights", "start from --pretrained backbone weights"),
        ("freeze", "use --set freeze_stages=N"),
        ("resume", "start a new run"),
    ):
        if options.pop(flag, None):
            raise ConfigError(f"--{flag} is not supported for detection yet", hint=hint)
    return options


def _threads(requested: int | None) -> int:
    """Torch threads: as requested; else all cores, or 1 when other processes keep them busy.

    Measured on the 2-core machine at load ~9: a cached-feature step took 1.4 s on one thread
    and ~9 s on two (OpenMP threads stall when the cores are oversubscribed).
    """
    if requested:
        return requested
    cores = os.cpu_count() or 1
    busy = hasattr(os, "getloadavg") and os.getloadavg()[0] >= cores
    return 1 if busy else cores


def _write_report(dataset: DetectionData, train_set: DetectionDataset, run_dir: Path) -> None:
    report = dataset.report.to_dict()
    report["undecodable_images"] = [{"path": p, "code": c} for p, c in train_set.bad.items()]
    report["splits"] = {name: boxes_summary(records) for name, records in dataset.splits.items()}
    (run_dir / "data_report.json").write_text(json.dumps(report, indent=2, default=str))


def _yaml(values: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(values, sort_keys=False)
