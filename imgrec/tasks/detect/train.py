"""``train(data, **options)`` for object detection: data -> RUN_DIR with the model directory.

Detection trains through the shared loop (:func:`imgrec.engine.loop.fit`): its batches are
``(images or cached features, list of box targets)`` and its ``batch_loss`` sums the detector's
losses; the best epoch is the one with the highest ``val_map50``; ``time_budget`` is a
:class:`~imgrec.engine.budget.TimeBudget` that plans the schedule's length. Checkpoints,
``--resume``, history, seeding, device and threads are the engine's, as for classification.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch.utils.data import DataLoader

from imgrec.data.detection import DetectionData, boxes_summary, load_detection_data
from imgrec.data.detection.augment import DetectionDataset, collate, train_transform
from imgrec.engine.batches import RankBatchSampler
from imgrec.engine.budget import TimeBudget
from imgrec.engine.callbacks import (
    Callback,
    Checkpointer,
    HistoryWriter,
    ProgressBar,
    restore_state,
)
from imgrec.engine.checkpoint import seed_everything
from imgrec.engine.distributed import (
    LossModule,
    World,
    barrier,
    broadcast_figures,
    close_world,
    data_parallel,
    init_world,
    threads_per_process,
)
from imgrec.engine.loop import TrainState, fit
from imgrec.engine.optim import Horizon, build_optimizer, build_scheduler
from imgrec.engine.run import (
    CONFIG_FILE,
    TrainResult,
    default_run_dir,
    pick_device,
    require_resumable,
    resume_checkpoint,
)
from imgrec.errors import ConfigError, DatasetError
from imgrec.models.card import IMAGENET_MEAN, IMAGENET_STD, ModelCard, Preprocessing, save_model_dir
from imgrec.models.detectors import Detector, build_detector, load_detector
from imgrec.storage import write_bytes
from imgrec.tasks.detect.evaluate import evaluate_records, headline, write_evaluation
from imgrec.tasks.detect.recipe import DetectConfig, make_config

Targets = list[dict[str, torch.Tensor]]
LossFn = Callable[[Any, Targets], dict[str, torch.Tensor]]
MONITOR = "val_map50"


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


def _card(
    cfg: DetectConfig, data: DetectionData, metrics: dict[str, Any], pre: Preprocessing
) -> ModelCard:
    return ModelCard(
        architecture=cfg.model,
        classes=list(data.classes),
        preprocessing=pre,
        task="detect",
        arch_kwargs=cfg.arch_kwargs(),
        metrics=headline(metrics),
        dataset={
            "uri": data.uri,
            "format": data.format,
            "counts": data.counts(),
            "fingerprint": data.fingerprint(),
        },
        config=cfg.to_dict(),
        weights={"pretrained": cfg.pretrained, "backbone": cfg.backbone},
    )


def train(
    data: str | Path,
    *,
    out: str | Path | None = None,
    config: Any = None,
    progress: bool = True,
    resume: bool = False,
    **options: Any,
) -> TrainResult:
    """Train a detector on ``data`` (COCO folder, YOLO ``data.yaml`` or VOC folder).

    Writes ``RUN_DIR/model/`` (the epoch with the best val mAP50; with ``val_every=0`` only the
    last epoch is validated, so it is the last), ``last/``, ``checkpoint.pt``, ``config.yaml``,
    ``history.jsonl``, ``metrics.json``, ``data_report.json``, ``figures/`` and ``report.html``.
    ``resume=True`` continues the run in ``out`` from its ``checkpoint.pt`` (after ``kill -9``
    too); without a time budget the result equals an uninterrupted run's.

    Example::

        result = train("data/digits-detect", epochs=10, out="runs/digits")
        result.metrics["map50"]
    """
    started = time.perf_counter()
    progress = progress and not options.pop("quiet", False)
    run_dir = Path(out) if out is not None else default_run_dir("detect")
    saved_config = require_resumable(run_dir) if resume else config
    cfg = make_config(saved_config, **_cli_options(options))
    world = init_world(cfg.device)
    try:
        return _train(data, cfg, run_dir, resume, progress, world, started)
    finally:
        close_world(world)


def _train(data: str | Path, cfg: DetectConfig, run_dir: Path, resume: bool, progress: bool,
           world: World, started: float) -> TrainResult:  # fmt: skip
    progress = progress and world.main
    console = Console(stderr=True, quiet=not progress)
    torch.set_num_threads(cfg.threads or threads_per_process(world))
    run_dir.mkdir(parents=True, exist_ok=True)
    if world.main:
        write_bytes(run_dir / CONFIG_FILE, _yaml(cfg.to_dict()).encode())
    generator = seed_everything(cfg.seed)
    dataset = load_detection_data(data)
    _split_val(dataset, cfg)
    fingerprint = dataset.fingerprint()
    pre = preprocessing_for(cfg)
    device = pick_device(cfg.device, world.local_rank)
    det = build_detector(
        cfg.model, len(dataset.classes), pretrained=cfg.pretrained, **cfg.arch_kwargs()
    ).to(device)
    setup_start = time.perf_counter()
    train_set = DetectionDataset(
        dataset.split("train"), train_transform(pre, cfg.augment, hflip=cfg.hflip)
    )
    epoch_batches, loss_fn, steps = _batches(det, train_set, cfg, pre, generator, progress, world)
    setup_seconds = time.perf_counter() - setup_start
    horizon = Horizon(cfg.epochs * steps)
    budget = None
    if cfg.time_budget:
        log = (lambda line: console.print(line, highlight=False)) if progress else None
        budget = TimeBudget(cfg.time_budget, horizon=horizon, started=setup_start,
                            max_steps=horizon.total_steps, log=log,
                            min_steps=0)  # fmt: skip
    state = _state(cfg, det, on_device(loss_fn, device), horizon, device, generator, budget,
                   world)  # fmt: skip
    if resume:
        restore_state(state, resume_checkpoint(run_dir, fingerprint), steps)
        console.print(
            f"resumed {run_dir} after epoch {state.epoch}/{state.epochs}", highlight=False
        )

    final: dict[str, Any] = {}  # the full evaluation of the last epoch, reused when it is best
    val = dataset.split("val")

    def validate(model: torch.nn.Module) -> dict[str, float]:
        last = state.epoch + 1 >= state.epochs or state.stop
        if not last and not (cfg.val_every and (state.epoch + 1) % cfg.val_every == 0):
            return {}
        figures: dict[str, float] = {}
        if world.main:  # mAP is over the whole val set: rank 0 computes it, every rank gets it
            if last:
                metrics = evaluate_records(
                    det, val, dataset.classes, pre, score_threshold=cfg.score_threshold
                )
                final.clear()
                final.update(metrics)
            else:
                metrics = evaluate_records(det, val, dataset.classes, pre, crosscheck=False)
            figures = {"val_map": round(metrics["map"], 5), "val_map50": round(metrics["map50"], 5)}
        return broadcast_figures(figures, world)

    def save(st: TrainState, path: str, record: dict[str, Any]) -> None:
        save_model_dir(det, _card(cfg, dataset, {}, pre), path)

    callbacks: list[Callback] = []
    if world.main:  # one writer: rank 0
        callbacks += [
            HistoryWriter(run_dir / "history.jsonl"),
            Checkpointer(run_dir, save, extra=lambda: {"fingerprint": fingerprint}),
        ]
    if budget is not None:  # before the Checkpointer: the checkpoint keeps the plan
        callbacks.insert(0, budget)
    if progress:
        callbacks.insert(0, ProgressBar(console))
    fit(state, epoch_batches, validate, callbacks)
    metrics: dict[str, Any] = {}
    if world.main:
        metrics = _finish(det, cfg, dataset, pre, run_dir, state, final)
        metrics["train_seconds"] = setup_seconds + state.train_seconds
        _write_report(dataset, train_set, run_dir)
        write_evaluation(metrics, run_dir, history=state.history)
    barrier(world)  # the other ranks return once the model directory is final
    return TrainResult(
        str(run_dir),
        str(run_dir / "model"),
        metrics,
        state.history,
        seconds=time.perf_counter() - started,
    )


def _state(
    cfg: DetectConfig,
    det: Detector,
    loss_fn: LossFn,
    horizon: Horizon,
    device: torch.device,
    generator: torch.Generator,
    budget: TimeBudget | None,
    world: World,
) -> TrainState:
    params = [p for p in det.parameters() if p.requires_grad]
    opt = build_optimizer("adamw", params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = build_scheduler(
        "cosine",
        opt,
        total_steps=horizon if budget is not None else horizon.total_steps,
        warmup_steps=cfg.warmup_steps,
    )
    # DDP wraps the loss computation (detection's loss is not its forward) to sync gradients;
    # cached features leave the frozen prefix without gradients: unused parameters
    model = data_parallel(
        LossModule(det, _or_zero(loss_fn, det)), world, device, unused_parameters=True
    )
    return TrainState(
        model=model if world.distributed else det,
        optimizer=opt,
        scheduler=scheduler,
        epochs=cfg.epochs,
        device=device,
        grad_clip=cfg.grad_clip,
        batch_loss=detection_batch_loss(loss_fn),
        monitor=MONITOR,
        generator=generator,
        world=world,
    )


DetBatch = tuple[Any, Targets]  # (images (B, 3, S, S) or cached feature maps, box targets)


def detection_batch_loss(
    loss_fn: LossFn,
) -> Callable[[TrainState, DetBatch], tuple[torch.Tensor, int] | None]:
    """The engine's ``batch_loss``: the sum of the detector's losses; images without usable
    boxes leave an empty batch, which is skipped."""

    def batch_loss(state: TrainState, batch: DetBatch) -> tuple[torch.Tensor, int] | None:
        inputs, targets = batch
        if not targets and not state.world.distributed:
            return None  # a distributed rank still steps (zero loss): every rank must
        if state.world.distributed:  # through DDP, whose backward syncs the gradients
            loss = sum(state.model(inputs, targets).values())
        else:
            loss = sum(loss_fn(inputs, targets).values())
        assert isinstance(loss, torch.Tensor)
        return loss, len(targets)

    return batch_loss


def _or_zero(loss_fn: LossFn, det: Detector) -> LossFn:
    """``loss_fn``, or a zero loss over the trainable parameters when a rank's batch holds no
    usable image (its gradients are zeros; the other ranks' still count)."""

    def loss(inputs: Any, targets: Targets) -> dict[str, torch.Tensor]:
        if targets:
            return loss_fn(inputs, targets)
        params = [p for p in det.parameters() if p.requires_grad]
        return {"zero": sum((p.sum() * 0.0 for p in params), torch.zeros(()))}

    return loss


def _finish(
    det: Detector,
    cfg: DetectConfig,
    dataset: DetectionData,
    pre: Preprocessing,
    run_dir: Path,
    state: TrainState,
    final: dict[str, Any],
) -> dict[str, Any]:
    """Evaluate the best model on val and record the figures (and the threshold) in its card."""
    best = det
    if state.best_epoch == state.epoch and final:
        metrics = dict(final)
    else:
        best, _ = load_detector(str(run_dir / "model"))
        metrics = evaluate_records(
            best, dataset.split("val"), dataset.classes, pre, score_threshold=cfg.score_threshold
        )
    cfg.score_threshold = metrics["score_threshold"]  # the card keeps the one chosen on val
    card = _card(cfg, dataset, metrics, pre)
    card.metrics["best_epoch"] = state.best_epoch
    save_model_dir(best, card, run_dir / "model")
    return metrics


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
    world: World,
) -> tuple[Callable[[], Iterable[tuple[Any, Targets]]], LossFn, int]:
    """(epoch -> batches, loss function, steps per epoch): images, or cached features; in a
    distributed run, this rank's share of each global batch (``batch_size`` per process)."""
    if cfg.uses_cache():
        from imgrec.tasks.detect.frozen_features import FeatureCache, cached_loss

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
            lambda: cache.batches(cfg.batch_size, generator, world),
            cached_loss(det, cfg.img_size, cfg.cache_blocks),
            cache.num_batches(cfg.batch_size, world),
        )
    if world.distributed:
        sampler = RankBatchSampler(
            len(train_set), cfg.batch_size, world, shuffle=True, generator=generator
        )
        ranked = DataLoader(train_set, batch_sampler=sampler, collate_fn=collate)
        return (lambda: ranked), det.loss, len(sampler)
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


def _cli_options(options: dict[str, Any]) -> dict[str, Any]:
    """Map the shared ``imgrec train`` flags onto ``DetectConfig`` (``--model auto``: default)."""
    options = dict(options)
    options.pop("task", None)
    if options.get("model") == "auto":
        options.pop("model")
    for flag, hint in (
        ("weights", "start from --pretrained backbone weights"),
        ("freeze", "use --set freeze_stages=N"),
    ):
        if options.pop(flag, None):
            raise ConfigError(f"--{flag} is not supported for detection yet", hint=hint)
    return options


def _write_report(dataset: DetectionData, train_set: DetectionDataset, run_dir: Path) -> None:
    report = dataset.report.to_dict()
    report["undecodable_images"] = [{"path": p, "code": c} for p, c in train_set.bad.items()]
    report["splits"] = {name: boxes_summary(records) for name, records in dataset.splits.items()}
    (run_dir / "data_report.json").write_text(json.dumps(report, indent=2, default=str))


def _yaml(values: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(values, sort_keys=False)
