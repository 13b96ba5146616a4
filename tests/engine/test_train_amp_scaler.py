"""The loop with a gradient scaler (the CUDA AMP path), run on the CPU with ``GradScaler("cpu")``.

On the first GPU run (benchmarks/gpu_check.py) the scaler skipped the first optimizer step (inf
gradients at its initial scale) while the loop still stepped the LR schedule: PyTorch warned
"lr_scheduler.step() before optimizer.step()" and the schedule ran one step ahead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from imgrec.engine.loop import TrainState, train_one_epoch
from imgrec.engine.optim import build_scheduler


def _state(init_scale: float) -> TrainState:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = build_scheduler("cosine", opt, total_steps=10, warmup_steps=0)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=1000)
    return TrainState(
        model=model, optimizer=opt, scheduler=sched, epochs=1, scaler=scaler, loss_fn=_loss
    )


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, target) * 100.0  # x 3e38 overflows float32


def _batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g))] * n


def test_skipped_scaler_steps_do_not_advance_the_schedule() -> None:
    # a scale so large that the scaled gradients overflow float32: the first steps are skipped
    state = _state(init_scale=3e38)
    before = [p.detach().clone() for p in state.model.parameters()]
    train_one_epoch(state, _batches(3))  # a "scheduler before optimizer" warning is an error
    assert state.step == 3
    skipped = 3 - state.scheduler.last_epoch
    assert skipped >= 1  # at least the first step overflowed and was skipped
    assert state.scaler is not None and state.scaler.get_scale() < 3e38
    moved = any(
        not torch.equal(b, p) for b, p in zip(before, state.model.parameters(), strict=True)
    )
    assert moved == (skipped < 3)


def test_finite_scaled_steps_advance_the_schedule_every_step() -> None:
    state = _state(init_scale=2.0**8)
    train_one_epoch(state, _batches(4))
    assert state.scheduler.last_epoch == 4
    assert state.scaler is not None and state.scaler.get_scale() == 2.0**8
