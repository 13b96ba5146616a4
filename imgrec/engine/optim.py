"""Optimizers and learning-rate schedules, looked up by name in registries.

Schedules step once per optimizer step (not per epoch) so short runs still warm up and anneal.
Their length is a number of steps, or a :class:`Horizon` that a time budget
(:mod:`imgrec.engine.budget`) plans while the run goes::

    opt = build_optimizer("adamw", model.parameters(), lr=3e-3, weight_decay=0.05)
    sched = build_scheduler("cosine", opt, total_steps=1000, warmup_steps=50)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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


@dataclass
class Horizon:
    """The planned length of a run in optimizer steps, read by its schedule at every step.

    A fixed run's horizon never changes; a time-budgeted run starts from a guess and its
    :class:`~imgrec.engine.budget.TimeBudget` sets ``total_steps`` once it has measured the
    step speed, so the schedule built on it anneals to the end of the budget::

        horizon = Horizon(total_steps=1000)
        sched = build_scheduler("cosine", opt, total_steps=horizon, warmup_steps=50)
        horizon.total_steps = 640   # the rest of the run follows the new length
    """

    total_steps: int


def _warmup_then(
    after: Callable[[float], float],
    warmup_steps: int,
    horizon: Horizon,
    start: float = 0.0,
) -> Callable[[int], float]:
    """Linear warm-up from ``start`` (a share of the peak) to 1, then ``after(share done)``."""

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return start + (1.0 - start) * (step + 1) / (warmup_steps + 1)
        span = max(1, horizon.total_steps - warmup_steps)
        return after(min(1.0, (step - warmup_steps) / span))

    return factor


def _horizon(total_steps: int | Horizon) -> Horizon:
    return total_steps if isinstance(total_steps, Horizon) else Horizon(int(total_steps))


def _cosine_from(peak: float, floor: float) -> Callable[[float], float]:
    return lambda t: floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * t))


@SCHEDULERS.register("cosine")
def _cosine(opt: Optimizer, *, total_steps: int | Horizon, warmup_steps: int) -> LRScheduler:
    # Anneals to 1% of the peak rather than 0: the last steps still learn something.
    return LambdaLR(opt, _warmup_then(_cosine_from(1.0, 0.01), warmup_steps, _horizon(total_steps)))


@SCHEDULERS.register("constant")
def _constant(opt: Optimizer, *, total_steps: int | Horizon, warmup_steps: int) -> LRScheduler:
    return LambdaLR(opt, _warmup_then(lambda t: 1.0, warmup_steps, _horizon(total_steps)))


ONECYCLE_START = 1 / 25  # OneCycleLR's div_factor: the warm-up starts at 4% of the peak


@SCHEDULERS.register("onecycle")
def _onecycle(opt: Optimizer, *, total_steps: int | Horizon, warmup_steps: int) -> LRScheduler:
    if isinstance(total_steps, Horizon):
        # A length planned while running: OneCycleLR fixes it at construction, so the same
        # shape as a lambda on the horizon (warm-up from 4% of the peak, cosine to ~0).
        steps = warmup_steps or max(1, total_steps.total_steps // 4)
        anneal = _warmup_then(_cosine_from(1.0, 1e-4), steps, total_steps, ONECYCLE_START)
        return LambdaLR(opt, anneal)
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
    total_steps: int | Horizon,
    warmup_steps: int = 0,
) -> LRScheduler:
    """Per-step schedule ``name`` (``cosine``, ``onecycle`` or ``constant``) with warm-up.

    ``total_steps`` is a number, or a :class:`Horizon` a time budget plans while the run goes.
    """
    return SCHEDULERS.get(name)(opt, total_steps=total_steps, warmup_steps=warmup_steps)
