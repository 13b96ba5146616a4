"""The training loop of every task: one epoch of steps, then validation, callbacks at the seams.

Everything that is not "compute the loss and step" (progress, history, early stopping,
checkpoints, a time budget: :mod:`imgrec.engine.budget`) is a :class:`Callback`; what differs
between tasks is a parameter of :class:`TrainState`: ``batch_loss`` turns one batch into a
loss (classification's default moves ``(x, y)`` to the device and applies ``loss_fn``;
detection sums its box losses) and ``monitor`` names the validation figure that picks the
best epoch::

    state = TrainState(model=net, optimizer=opt, scheduler=sched, epochs=10)
    fit(state, train_batches, validate, callbacks=[ProgressBar(), HistoryWriter(path)])
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from imgrec.engine.distributed import World, all_sum, any_rank, global_weight, reduce_figures

Batch = tuple[torch.Tensor, torch.Tensor]  # x (B, 3, H, W), y (B,) class ids or (B, K) soft
# (state, batch) -> (loss, images in the batch), or None to skip the batch (nothing to learn)
BatchLoss = Callable[["TrainState", Any], "tuple[torch.Tensor, int] | None"]


def classification_batch_loss(state: TrainState, batch: Batch) -> tuple[torch.Tensor, int]:
    """``loss_fn(model(x), y)`` with ``x, y`` moved to the device (channels-last if asked)."""
    x, y = batch
    x, y = x.to(state.device, non_blocking=True), y.to(state.device, non_blocking=True)
    if state.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return state.loss_fn(state.model(x), y), x.shape[0]


@dataclass
class TrainState:
    """What the loop and the callbacks share. ``epoch`` counts finished epochs."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    epochs: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp: bool = False  # autocast: float16 on CUDA (with ``scaler``), bfloat16 on the CPU
    channels_last: bool = False
    grad_clip: float | None = None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
    train_mode: Callable[[nn.Module], Any] = lambda m: m.train()
    batch_loss: BatchLoss = classification_batch_loss
    monitor: str = "val_accuracy"  # the validation figure (higher is better) that picks the best
    generator: torch.Generator | None = None
    scaler: torch.amp.GradScaler | None = None
    epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float = -math.inf
    best_epoch: int = 0
    train_seconds: float = 0.0  # time spent in training steps (validation excluded)
    plan: dict[str, Any] = field(default_factory=dict)  # a time budget's plan, checkpointed
    stop: bool = False  # set by a callback: the loop ends after the current batch
    world: World = field(default_factory=World)  # this process's rank among the trainers


class Callback:
    """Hooks called by :func:`fit`; override the ones you need."""

    def on_fit_start(self, state: TrainState, steps_per_epoch: int) -> None: ...

    def on_epoch_start(self, state: TrainState) -> None: ...

    def on_batch_end(self, state: TrainState, loss: float, batch_size: int) -> None: ...

    def on_validation_start(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState, record: dict[str, Any]) -> None: ...

    def on_fit_end(self, state: TrainState) -> None: ...


def _autocast(
    state: TrainState, validation: bool = False
) -> contextlib.AbstractContextManager[Any]:
    if state.amp and state.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    # CPU validation stays float32: the best epoch is picked by the figure that the final
    # evaluation and the exported (float32) model give, not by bf16's (0.1 pt apart on mnist5k)
    if state.amp and state.device.type == "cpu" and not validation:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_one_epoch(
    state: TrainState, batches: Iterable[Any], callbacks: Sequence[Callback] = ()
) -> float:
    """One pass over ``batches`` (or until a callback sets ``state.stop``); the mean loss."""
    state.train_mode(state.model)
    total, count = 0.0, 0
    for batch in batches:
        with _autocast(state):
            computed = state.batch_loss(state, batch)
        if computed is None:
            continue
        loss, size = computed
        # DDP averages the ranks' gradients: weight each rank's loss by its share of the batch
        weighted = loss * global_weight(size, state.world) if state.world.distributed else loss
        state.optimizer.zero_grad(set_to_none=True)
        if state.scaler is not None:
            state.scaler.scale(weighted).backward()
            state.scaler.unscale_(state.optimizer)
        else:
            weighted.backward()
        if state.grad_clip:
            nn.utils.clip_grad_norm_(state.model.parameters(), state.grad_clip)
        if state.scaler is not None:
            scale = state.scaler.get_scale()
            state.scaler.step(state.optimizer)
            state.scaler.update()
            # a lowered scale means inf/NaN gradients: the scaler skipped the optimizer step,
            # so the schedule waits too (stepping it warns, and the first LR would be lost)
            stepped = state.scaler.get_scale() >= scale
        else:
            state.optimizer.step()
            stepped = True
        if stepped:
            state.scheduler.step()
        state.step += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            from imgrec.errors import ConfigError

            raise ConfigError(
                f"training diverged: loss is {value} at step {state.step}",
                hint="lower the learning rate (--set lr=...) or enable grad_clip",
            )
        total += value * size
        count += size
        for cb in callbacks:
            cb.on_batch_end(state, value, size)
        if any_rank(state.stop, state.world):  # a rank's time budget stops every rank
            state.stop = True
            break
    if state.world.distributed:
        total, seen = all_sum([total, count])
        return total / max(seen, 1.0)
    return total / max(count, 1)


def fit(
    state: TrainState,
    train_batches: Iterable[Any] | Callable[[], Iterable[Any]],
    validate: Callable[[nn.Module], dict[str, float]],
    callbacks: Sequence[Callback] = (),
) -> TrainState:
    """Train from ``state.epoch`` to ``state.epochs`` (or until a callback sets ``stop``).

    ``train_batches`` is an iterable (a DataLoader) or a function returning each epoch's batches.
    ``validate(model)`` returns the epoch's ``val_*`` figures (classification: ``val_loss`` and
    ``val_accuracy``; an epoch it skips returns ``{}``). Each epoch's record (``epoch,
    train_loss, <val figures>, lr, seconds``) is appended to ``history``. The best epoch is the
    one with the highest ``state.monitor``; until an epoch reports it, the latest epoch is.
    """
    steps = len(train_batches) if isinstance(train_batches, Sized) else 0
    for cb in callbacks:
        cb.on_fit_start(state, steps)
    while state.epoch < state.epochs and not state.stop:
        start = time.perf_counter()
        lr = state.optimizer.param_groups[0]["lr"]
        for cb in callbacks:
            cb.on_epoch_start(state)
        batches = train_batches() if callable(train_batches) else train_batches
        train_loss = train_one_epoch(state, batches, callbacks)
        state.train_seconds += time.perf_counter() - start
        for cb in callbacks:
            cb.on_validation_start(state)
        state.model.eval()
        with torch.no_grad(), _autocast(state, validation=True):
            val = reduce_figures(validate(state.model), state.world)
        state.epoch += 1
        record = {"epoch": state.epoch, "train_loss": train_loss, **val, "lr": lr}
        record["seconds"] = round(time.perf_counter() - start, 3)
        state.history.append(record)
        _update_best(state, record)
        for cb in callbacks:
            cb.on_epoch_end(state, record)
    for cb in callbacks:
        cb.on_fit_end(state)
    return state


def _update_best(state: TrainState, record: dict[str, Any]) -> None:
    score = record.get(state.monitor)
    if score is None:  # not validated this epoch: the newest model stands in until one is
        if state.best == -math.inf:
            state.best_epoch = state.epoch
        return
    if score > state.best:
        state.best, state.best_epoch = float(score), state.epoch


def classification_loss(
    *, label_smoothing: float = 0.0, class_weights: torch.Tensor | None = None
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy for hard ``(B,)`` or soft ``(B, K)`` targets (MixUp/CutMix)."""

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = None if class_weights is None else class_weights.to(logits.device)
        return F.cross_entropy(
            logits.float(), target, weight=weight, label_smoothing=label_smoothing
        )

    return loss
