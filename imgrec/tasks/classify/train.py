"""``train()``: one classification training run, from a dataset to a run directory.

::

    from imgrec.tasks.classify.train import train

    result = train("data/mnist5k")                       # the recipe picks everything
    result = train("data/photos", model="resnet18", epochs=5, out="runs/r18", lr=1e-3)
    result = train("data/photos", out="runs/r18", resume=True)   # after a crash / kill -9
    result = train("data/mnist5k", time_budget=60)       # the schedule planned to fit 60 s
    result.model_dir, result.metrics["accuracy"]

The run directory follows docs/design.md: ``model/`` (best), ``last/``, ``checkpoint.pt``,
``config.yaml``, ``history.jsonl``, ``metrics.json``, ``data_report.json``, ``figures/`` and
``report.html``.

A run scans its data first, at once: this module imports only what the scan needs (NumPy,
Pillow); torch and the training engine (seconds of CPU) load after the scan
(:func:`_import_training`), and the time budget does not count them. Loading them in a thread
during the scan was measured and gained nothing on 2 cores: both hold the GIL most of the time,
and the scan took 4x longer beside the imports (BENCHMARKS.md, "Start-up").
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from imgrec.config import TrainConfig, load_config
from imgrec.data.dataset import ClassificationData, load_classification_data
from imgrec.data.shards import ShardIndex, is_shards, read_index, read_shard
from imgrec.errors import ConfigError, DatasetError
from imgrec.tasks.classify.recipe import ImageStats, inspect_images, resolve

if TYPE_CHECKING:
    import torch

    from imgrec.engine.distributed import World
    from imgrec.engine.loop import TrainState
    from imgrec.engine.optim import Horizon
    from imgrec.engine.run import TrainResult
    from imgrec.models.card import ModelCard
    from imgrec.tasks.classify.train_setup import Session

TrainData = ClassificationData | ShardIndex  # image files, or tar shards streamed
# A time-budgeted run validates only the last third of its planned epochs (at least 3): each
# validation of mnist5k's 1,000 val images with its checkpoint cost ~4 steps' time (6% of an
# epoch), time that now buys steps; with the one-cycle schedule the last third reached the
# whole run's best val figure in 14 of 15 fixed-length mnist5k runs (one 0.1 pt below; the last
# 3 epochs alone: 11 of 15, up to 0.2 pt below). ``model/`` holds the newest epoch until one is
# validated; with early stopping every epoch is validated.
BUDGET_VALIDATED_SHARE, BUDGET_VALIDATED_MIN = 1 / 3, 3
CARD_METRICS = ("accuracy", "top5", "f1_macro", "precision_macro", "recall_macro", "ece", "n")


def _load_data(data: Any, cfg: TrainConfig, console: Console) -> TrainData:
    if isinstance(data, ClassificationData | ShardIndex):
        dataset = data
    elif is_shards(data):
        console.print(f"streaming shards from {data}", highlight=False)
        dataset = read_index(os.fspath(data))
    else:
        console.print(f"scanning {data} ...", highlight=False)
        start = time.perf_counter()
        dataset = load_classification_data(
            os.fspath(data),
            val_fraction=cfg.val_fraction,
            seed=cfg.seed,
            max_bad_fraction=cfg.max_bad_fraction,
        )
        counts = ", ".join(f"{split} {n:,}" for split, n in dataset.counts().items())
        console.print(
            f"scanned {data}: {len(dataset.classes)} classes ({counts}) "
            f"in {time.perf_counter() - start:.1f} s",
            highlight=False,
            soft_wrap=True,
        )
    for bad in dataset.report.bad:
        console.print(f"skipped bad file {bad.path}: [{bad.code}] {bad.reason}", highlight=False)
    for split in ("train", "val"):
        if not dataset.counts().get(split):
            raise DatasetError(
                f"dataset {dataset.uri} has no {split} images",
                hint="add a val/ folder or set val_fraction (e.g. --set val_fraction=0.2)",
            )
    return dataset


def _class_weights(cfg: TrainConfig, data: TrainData) -> torch.Tensor | None:
    import torch

    if cfg.class_weights != "balanced":
        return None
    if isinstance(data, ShardIndex):
        counts = torch.as_tensor(data.class_counts["train"]).clamp(min=1).float()
    else:
        labels = torch.as_tensor([r.label for r in data.splits["train"]])
        counts = torch.bincount(labels, minlength=len(data.classes)).clamp(min=1).float()
    return counts.sum() / (len(data.classes) * counts)


def _state(cfg: TrainConfig, session: Session, data: TrainData, device: torch.device,
           generator: torch.Generator, world: World, horizon: Horizon) -> TrainState:  # fmt: skip
    import torch

    from imgrec.engine.distributed import data_parallel
    from imgrec.engine.loop import TrainState, classification_loss
    from imgrec.engine.optim import build_optimizer, build_scheduler

    assert cfg.lr is not None and cfg.epochs is not None and cfg.scheduler is not None
    params = [p for p in session.trained.parameters() if p.requires_grad]
    optimizer = build_optimizer(
        cfg.optimizer, params, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum
    )
    steps = len(session.train_batches)  # type: ignore[arg-type]
    scheduler = build_scheduler(
        cfg.scheduler,
        optimizer,
        # a time budget plans the length once it has timed the steps: the schedule follows
        total_steps=horizon if cfg.time_budget else horizon.total_steps,
        warmup_steps=round(cfg.warmup_epochs * steps),
    )
    use_amp = bool(cfg.amp)
    return TrainState(
        model=data_parallel(session.trained, world, device),
        optimizer=optimizer,
        scheduler=scheduler,
        epochs=cfg.epochs,
        device=device,
        amp=use_amp,
        channels_last=session.channels_last,
        grad_clip=cfg.grad_clip,
        loss_fn=classification_loss(
            label_smoothing=cfg.label_smoothing, class_weights=_class_weights(cfg, data)
        ),
        train_mode=session.train_mode,
        generator=generator,
        scaler=torch.amp.GradScaler("cuda") if use_amp and device.type == "cuda" else None,
        world=world,
    )


def _card(cfg: TrainConfig, session: Session, data: TrainData,
          metrics: dict[str, Any], task: str) -> ModelCard:  # fmt: skip
    from imgrec.models.card import ModelCard

    assert cfg.model is not None
    return ModelCard(
        architecture=cfg.model,
        task=task,
        classes=list(data.classes),
        preprocessing=session.pre,
        arch_kwargs=dict(cfg.arch_kwargs),
        metrics=metrics,
        dataset={
            "uri": data.uri,
            "fingerprint": data.fingerprint,
            "counts": data.counts(),
        },
        config=cfg.to_dict(),
        weights={"pretrained": bool(cfg.pretrained), "init": cfg.weights},
    )


def _resolve_config(
    data: Any, run_dir: Path | None, resume: bool, config: Any, overrides: dict[str, Any]
) -> TrainConfig:
    if resume:
        if run_dir is None:  # a fresh default run directory has nothing to continue
            raise ConfigError("resume=True needs out=RUN_DIR", hint="the run directory to continue")
        from imgrec.engine.run import require_resumable

        return load_config(require_resumable(run_dir), overrides=overrides)
    return load_config(config, overrides=overrides)


def train(
    data: Any,
    *,
    model: str | None = "auto",
    epochs: int | None = None,
    img_size: int | None = None,
    batch_size: int | None = None,
    out: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | TrainConfig | dict[str, Any] | None = None,
    resume: bool = False,
    quiet: bool = False,
    task: str = "classify",
    **overrides: Any,
) -> TrainResult:
    """Train a classifier on ``data`` (folder, ``s3://`` prefix, CSV, ``ClassificationData``,
    or tar shards with a ``shards.json`` index, streamed: see :mod:`imgrec.data.shards`).

    ``config`` is a YAML file, dict or ``TrainConfig``; keyword ``overrides`` are config keys
    (``lr=1e-3``, ``freeze="backbone"``...). ``resume=True`` continues the run in ``out`` from
    its ``checkpoint.pt``. ``task`` is the name the model card records (a task built on
    classification passes its own, so ``evaluate``, ``predict`` and the servers find it).
    Returns a :class:`TrainResult`.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process runs this function: each trains
    on its share of the data with DistributedDataParallel (``batch_size`` per process) and
    only rank 0 writes the run directory; the other ranks return the history without files.

    Example: ``train("data/mnist5k", epochs=5, out="runs/mnist").metrics["accuracy"]``
    """
    started = time.perf_counter()
    explicit = {"model": None if model == "auto" else model, "epochs": epochs,
                "img_size": img_size, "batch_size": batch_size, **overrides}  # fmt: skip
    cfg = _resolve_config(data, Path(out) if out is not None else None, resume, config, explicit)
    # rank 0 reports (RANK as torchrun sets it; ``init_world`` joins the group after the scan)
    main_rank = os.environ.get("RANK", "").strip() in ("", "0")
    console = Console(stderr=True, quiet=quiet or not main_rank)
    dataset = _load_data(data, cfg, console)
    # the time budget counts from the start less the imports, as before they moved here
    started += _import_training()

    from imgrec.engine.distributed import close_world, init_world
    from imgrec.engine.run import default_run_dir

    run_dir = Path(out) if out is not None else default_run_dir()
    world = init_world(cfg.device)
    try:
        return _train(dataset, cfg, run_dir, resume, quiet, task, world, started, console)
    finally:
        close_world(world)


TRAINING_MODULES = (
    "torch",
    "imgrec.engine.loop",
    "imgrec.engine.callbacks",
    "imgrec.engine.optim",
    "imgrec.engine.budget",
    "imgrec.engine.run",
    "imgrec.models.card",
    "imgrec.tasks.classify.train_setup",
)


def _import_training() -> float:
    """Import torch and the training engine (:data:`TRAINING_MODULES`); returns the seconds
    it took."""
    start = time.perf_counter()
    for name in TRAINING_MODULES:
        importlib.import_module(name)
    return time.perf_counter() - start


def _train(dataset: TrainData, cfg: TrainConfig, run_dir: Path, resume: bool, quiet: bool,
           task: str, world: World, started: float, console: Console) -> TrainResult:  # fmt: skip
    import torch

    from imgrec.engine.budget import TimeBudget
    from imgrec.engine.callbacks import (
        Callback,
        Checkpointer,
        EarlyStopping,
        HistoryWriter,
        ProgressBar,
    )
    from imgrec.engine.checkpoint import seed_everything
    from imgrec.engine.distributed import barrier, threads_per_process
    from imgrec.engine.loop import fit
    from imgrec.engine.optim import Horizon
    from imgrec.engine.run import CONFIG_FILE, TrainResult, pick_device
    from imgrec.models.card import save_model_dir
    from imgrec.tasks.classify.train_setup import feature_session, pixel_session, stream_session

    run_dir.mkdir(parents=True, exist_ok=True)
    if world.main:
        dataset.report.write(str(run_dir / "data_report.json"))
    device = pick_device(cfg.device, world.local_rank)
    stats = _image_stats(dataset)
    cfg, notes = resolve(cfg, stats, device.type)
    if cfg.time_budget and world.distributed:  # each rank would plan its own schedule
        notes.append(f"time_budget: not planned across processes yet; {cfg.epochs} epochs run")
        cfg = cfg.replace(time_budget=None)
    for note in notes:
        console.print(note, highlight=False, soft_wrap=True)
    if world.main:
        cfg.save(run_dir / CONFIG_FILE)
    torch.set_num_threads(cfg.threads or threads_per_process(world))
    generator = seed_everything(cfg.seed, deterministic=cfg.deterministic)
    if isinstance(dataset, ShardIndex):
        session = stream_session(cfg, dataset, device, generator, console, world)
    else:
        build = feature_session if cfg.freeze == "backbone" and cfg.feature_cache else pixel_session
        session = build(cfg, dataset, device, generator, console, world)
    steps = len(session.train_batches)  # type: ignore[arg-type]
    assert cfg.epochs is not None
    horizon = Horizon(steps * cfg.epochs)
    state = _state(cfg, session, dataset, device, generator, world, horizon)
    if resume:
        _restore(state, run_dir, dataset, console, steps)

    def save(st: TrainState, path: str, record: dict[str, Any]) -> None:
        save_model_dir(session.network, _card(cfg, session, dataset, dict(record), task), path)

    callbacks: list[Callback] = [
        EarlyStopping(cfg.early_stopping_patience, cfg.early_stopping_min_delta)
    ]
    if cfg.time_budget:  # before the Checkpointer: the checkpoint keeps the plan
        log = None if quiet else lambda line: console.print(line, highlight=False)
        budget = TimeBudget(cfg.time_budget, horizon=horizon, started=started,
                            max_steps=horizon.total_steps, log=log,
                            min_steps=(cfg.min_epochs or 0) * steps)  # fmt: skip
        callbacks.insert(0, budget)
    if world.main:  # one writer: rank 0
        callbacks.insert(0, HistoryWriter(run_dir / "history.jsonl"))
        callbacks.append(
            Checkpointer(run_dir, save, extra=lambda: {"fingerprint": dataset.fingerprint})
        )
        if not quiet:
            callbacks.insert(0, ProgressBar(console))
    validate = session.validate
    if cfg.time_budget and not cfg.early_stopping_patience:
        validate = _late_validation(session.validate, state)
    fit(state, session.train_batches, validate, callbacks)
    metrics = _finish(cfg, session, dataset, run_dir, state) if world.main else {}
    barrier(world)  # the other ranks return once the model directory is final
    return TrainResult(
        run_dir=str(run_dir),
        model_dir=str(run_dir / "model"),
        metrics=metrics,
        history=state.history,
        seconds=time.perf_counter() - started,
    )


def _late_validation(
    validate: Callable[[torch.nn.Module], dict[str, float]], state: TrainState
) -> Callable[[torch.nn.Module], dict[str, float]]:
    """``validate`` for the last third of the planned epochs (:data:`BUDGET_VALIDATED_SHARE`,
    at least :data:`BUDGET_VALIDATED_MIN`) and an epoch the budget stops; ``{}`` before."""

    def late(model: torch.nn.Module) -> dict[str, float]:
        last = max(BUDGET_VALIDATED_MIN, round(state.epochs * BUDGET_VALIDATED_SHARE))
        if state.stop or state.epoch + 1 > state.epochs - last:
            return validate(model)
        return {}

    return late


def _image_stats(data: TrainData) -> ImageStats:
    """What the recipe looks at: sampled from the files, or recorded in the shard index."""
    if isinstance(data, ShardIndex):
        if data.image_stats:
            return ImageStats(**data.image_stats)
        first = data.shards("train")[0].uri  # not recorded: the images of the first shard
        return inspect_images([image for _, image, _ in read_shard(first)])  # type: ignore[misc]
    return inspect_images([r.path for r in data.splits["train"]])


def _restore(state: TrainState, run_dir: Path, data: TrainData, console: Console,
             steps_per_epoch: int) -> None:  # fmt: skip
    from imgrec.engine.callbacks import restore_state
    from imgrec.engine.run import resume_checkpoint

    restore_state(state, resume_checkpoint(run_dir, data.fingerprint), steps_per_epoch)
    console.print(f"resumed {run_dir} after epoch {state.epoch}/{state.epochs}", highlight=False)


def _finish(cfg: TrainConfig, session: Session, data: TrainData, run_dir: Path,
            state: TrainState) -> dict[str, Any]:  # fmt: skip
    """Evaluate the best model on val (metrics.json, figures, report) and record it in its card."""
    from imgrec.models.architectures import build_from_card
    from imgrec.models.card import read_model_dir, save_model_dir
    from imgrec.storage import write_bytes
    from imgrec.tasks.classify.evaluate import evaluate

    model_dir = run_dir / "model"
    if cfg.report:
        metrics = evaluate(model_dir, data, split="val", out_dir=run_dir, history=state.history)
    else:
        metrics = evaluate(model_dir, data, split="val")
        write_bytes(run_dir / "metrics.json", json.dumps(metrics, indent=2).encode())
    card, weights = read_model_dir(model_dir)
    card.metrics = {k: metrics[k] for k in CARD_METRICS if k in metrics}
    card.metrics["best_epoch"] = state.best_epoch
    save_model_dir(build_from_card(card, weights), card, model_dir)
    return metrics
