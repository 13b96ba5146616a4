"""Callbacks for :func:`imgrec.engine.loop.fit`: progress, history, early stopping and
checkpoints (the time budget is :mod:`imgrec.engine.budget`)."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from imgrec.engine.checkpoint import (
    CHECKPOINT_FILE,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from imgrec.engine.distributed import unwrap
from imgrec.engine.loop import Callback, TrainState
from imgrec.storage import write_bytes


class ProgressBar(Callback):
    """A rich progress bar per epoch (images/s, ETA, running loss) and one summary line."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.steps = 0
        self.loss_sum = 0.0
        self.seen = 0

    def on_fit_start(self, state: TrainState, steps_per_epoch: int) -> None:
        self.steps = steps_per_epoch

    def on_epoch_start(self, state: TrainState) -> None:
        self.loss_sum, self.seen = 0.0, 0
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} img/s"),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[ends]}"),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,  # logs and pipes get the epoch lines only
        )
        self.progress.start()
        label = f"{state.epoch + 1}/{state.epochs}"
        self.task = self.progress.add_task(
            "train", total=self.steps or None, epoch=label, rate="-", loss="-", ends=""
        )

    def on_batch_end(self, state: TrainState, loss: float, batch_size: int) -> None:
        if self.progress is None or self.task is None:
            return
        self.loss_sum += loss * batch_size
        self.seen += batch_size
        elapsed = self.progress.tasks[0].elapsed or 1e-9
        ends = state.plan.get("ends_at")
        self.progress.update(
            self.task,
            advance=1,
            rate=f"{self.seen / elapsed:.0f}",
            loss=f"{self.loss_sum / self.seen:.4f}",
            ends=f"training ends ~{_clock(ends)}" if ends else "",
        )

    def on_validation_start(self, state: TrainState) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_epoch_end(self, state: TrainState, record: dict[str, Any]) -> None:
        best = " *" if state.best_epoch == state.epoch else ""
        figures = "".join(
            f"  {key.replace('accuracy', 'acc')} {value:.4f}"
            for key, value in record.items()
            if key.startswith("val_") and isinstance(value, float)
        )
        ends = "" if state.epoch >= state.epochs else f"  ends ~{_clock(projected_end(state))}"
        self.console.print(
            f"epoch {record['epoch']}/{state.epochs}  train_loss {record['train_loss']:.4f}"
            f"{figures}  lr {record['lr']:.2e}  {record['seconds']:.1f}s{best}{ends}",
            highlight=False,
            soft_wrap=True,
        )


def projected_end(state: TrainState) -> float:
    """When training should end (``time.time()``): a time budget's plan, else the mean epoch
    so far times the epochs left."""
    if state.plan.get("ends_at"):
        return float(state.plan["ends_at"])
    seconds = [r["seconds"] for r in state.history if "seconds" in r]
    mean = sum(seconds) / len(seconds) if seconds else 0.0
    return time.time() + mean * max(0, state.epochs - state.epoch)


def _clock(when: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(when))


class HistoryWriter(Callback):
    """Writes ``history.jsonl``: one JSON object per finished epoch (rewritten on resume)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def on_fit_start(self, state: TrainState, steps_per_epoch: int) -> None:
        # A killed run may have logged an epoch its checkpoint never saw: keep the checkpoint's.
        text = "".join(json.dumps(r) + "\n" for r in state.history)
        write_bytes(self.path, text.encode())

    def on_epoch_end(self, state: TrainState, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


class EarlyStopping(Callback):
    """Stop when ``state.monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = patience
        self.min_delta = min_delta

    def on_epoch_end(self, state: TrainState, record: dict[str, Any]) -> None:
        if self.patience <= 0:
            return
        scores = [r.get(state.monitor, -math.inf) for r in state.history]
        best_index = 0
        for i, score in enumerate(scores):
            if score > scores[best_index] + self.min_delta:
                best_index = i
        if len(scores) - 1 - best_index >= self.patience:
            state.stop = True


def _schedule_from(scheduler: Any, step: int) -> None:
    """Set a freshly built per-step schedule to ``step`` (its learning rates included)."""
    import warnings

    scheduler.last_epoch = step - 1
    with warnings.catch_warnings():  # "step() before optimizer.step()": intended here
        warnings.simplefilter("ignore", UserWarning)
        scheduler.step()


SaveModel = Callable[[TrainState, str, dict[str, Any]], None]


class Checkpointer(Callback):
    """Each epoch: ``model/`` when the monitored figure improved, ``last/``, then ``checkpoint.pt``.

    ``save_model(state, path, record)`` writes a model directory (atomically, via
    ``save_model_dir``); ``checkpoint.pt`` is written last, so it never points at an epoch whose
    model directories are missing. ``extra()`` adds task data (e.g. the dataset fingerprint).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        save_model: SaveModel,
        extra: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.save_model = save_model
        self.extra = extra

    def on_epoch_end(self, state: TrainState, record: dict[str, Any]) -> None:
        if state.best_epoch == state.epoch:
            self.save_model(state, str(self.run_dir / "model"), record)
        self.save_model(state, str(self.run_dir / "last"), record)
        save_checkpoint(self.run_dir / CHECKPOINT_FILE, checkpoint_state(state, self.extra()))


def checkpoint_state(state: TrainState, extra: dict[str, Any]) -> dict[str, Any]:
    """Everything ``--resume`` needs, as tensors and plain data (weights_only-loadable)."""
    out: dict[str, Any] = {
        "model": unwrap(state.model).state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "epoch": state.epoch,
        "step": state.step,
        "epochs": state.epochs,
        "history": state.history,
        "best": state.best,
        "best_epoch": state.best_epoch,
        "train_seconds": state.train_seconds,
        "plan": state.plan,
        "rng": rng_state(state.generator),
        "world_size": state.world.size,
        **extra,
    }
    if state.scaler is not None:
        out["scaler"] = state.scaler.state_dict()
    return out


def restore_state(
    state: TrainState, saved: dict[str, Any], steps_per_epoch: int | None = None
) -> None:
    """Load a :func:`checkpoint_state` dict back into ``state`` (model, optimizer, RNG...).

    A checkpoint written by another number of processes had another number of steps per
    epoch: given this run's ``steps_per_epoch``, the step count and the learning-rate
    schedule are moved to the start of the next epoch of this run.
    """
    unwrap(state.model).load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    if state.scaler is not None and "scaler" in saved:
        state.scaler.load_state_dict(saved["scaler"])
    state.epoch, state.step = int(saved["epoch"]), int(saved["step"])
    resized = int(saved.get("world_size", 1)) != state.world.size
    if resized and steps_per_epoch is not None:
        state.step = state.epoch * steps_per_epoch
        _schedule_from(state.scheduler, state.step)
    else:
        state.scheduler.load_state_dict(saved["scheduler"])
    state.history = list(saved["history"])
    state.best, state.best_epoch = float(saved["best"]), int(saved["best_epoch"])
    state.train_seconds = float(saved.get("train_seconds", 0.0))
    state.plan = dict(saved.get("plan") or {})
    set_rng_state(saved["rng"], state.generator)
