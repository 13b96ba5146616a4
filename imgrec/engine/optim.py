"""Optimizers and learning-rate schedules, looked up by name in registries.

Schedules step once per optimizer step (not per epoch) so short runs still warm up and anneal.
``progress`` (e.g. :meth:`imgrec.engine.callbacks.TimeBudget.fraction`) lets a schedule follow
the clock: the share of the run done is the larger of steps done / planned and ``progress()``::

    opt = build_optimizer("adamw", model.parameters(), lr=3e-3, weight_decay=0.05)
    sched = build_scheduler("cosine", opt, total_steps=1000, warmup_steps=50)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from imgrec.registry import Registry

OPTIMIZERS: Registry[Callable[..., Optimizer]] = Registry("optimizer", list_hint="adamw, sgd")
SCHEDULERS: Registry[Callable[..., LRScheduler]] = Registry(
    "scheduler", list_hint="cosine, onecycle, constant"
)


def _param_groups(
    params: Iterable[torch.nn.Parameter], weight_decay: float
) -> list[dict[str, Any]]:
    # No decay on biases and norm scales (1-d tensors): the usual, better-behaved choice.
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for p in params:
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


@OPTIMIZERS.register("adamw")
def _adamw(params: Iterable[torch.nn.Parameter], *, lr: float, weight_decay: float, **_: Any):
    return torch.optim.AdamW(_param_groups(params, weight_decay), lr=lr)


@OPTIMIZERS.register("sgd")
def _sgd(
    params: Iterable[torch.nn.Parameter],
    *,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    **_: Any,
):
    return torch.optim.SGD(
        _param_groups(params, weight_decay), lr=lr, momentum=momentum, nesterov=momentum > 0
    )


def build_optimizer(
    name: str, params: Iterable[torch.nn.Parameter], *, lr: float, weight_decay: float, **kw: Any
) -> Optimizer:
    """Optimizer ``name`` (``adamw`` or ``sgd``) over the trainable ``params``."""
    return OPTIMIZERS.get(name)(params, lr=lr, weight_decay=weight_decay, **kw)


Progress = Callable[[], float] | None


def _warmup_then(
    after: Callable[[float], float], warmup_steps: int, total_steps: int, progress: Progress = None
):
    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        span = max(1, total_steps - warmup_steps)
        done = (step - warmup_steps) / span
        if progress is not None:
            done = max(done, progress())
        return after(min(1.0, done))

    return factor


@SCHEDULERS.register("cosine")
def _cosine(
    opt: Optimizer, *, total_steps: int, warmup_steps: int, progress: Progress = None
) -> LRScheduler:
    # Anneals to 1% of the peak rather than 0: the last steps still learn something.
    cosine = _warmup_then(
        lambda t: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)),
        warmup_steps,
        total_steps,
        progress,
    )
    return LambdaLR(opt, cosine)


@SCHEDULERS.register("constant")
def _constant(
    opt: Optimizer, *, total_steps: int, warmup_steps: int, progress: Progress = None
) -> LRScheduler:
    return LambdaLR(opt, _warmup_then(lambda t: 1.0, warmup_steps, total_steps))


@SCHEDULERS.register("onecycle")
def _onecycle(
    opt: Optimizer, *, total_steps: int, warmup_steps: int, progress: Progress = None
) -> LRScheduler:
    if progress is not None:  # OneCycleLR counts steps only: follow the clock with cosine
        return _cosine(opt, total_steps=total_steps, warmup_steps=warmup_steps, progress=progress)
    max_lrs = [g["lr"] for g in opt.param_groups]
    pct = min(0.5, max(0.05, warmup_steps / max(1, total_steps))) if warmup_steps else 0.25
    # OneCycleLR needs >= 2 steps in each phase; very short runs get warm-up + cosine instead.
    pct = max(pct, 2.0 / max(1, total_steps))
    if total_steps < 6 or pct > 0.5:
        return _cosine(opt, total_steps=total_steps, warmup_steps=warmup_steps)
    return OneCycleLR(opt, max_lr=max_lrs, total_steps=total_steps, pct_start=pct)


def build_scheduler(
    name: str,
    opt: Optimizer,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    progress: Progress = None,
) -> LRScheduler:
    """Per-step schedule ``name`` (``cosine``, ``onecycle`` or ``constant``) with warm-up;
    with ``progress`` (a share of a time budget, 0..1) it also follows the clock."""
    return SCHEDULERS.get(name)(
        opt, total_steps=total_steps, warmup_steps=warmup_steps, progress=progress
    )
