"""The EMA of the weights: validation and the saved model see the average, training goes on
from the trained weights, and a resumed run continues the same average bit for bit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from imgrec.engine.average import WeightAverage
from imgrec.engine.callbacks import Callback, checkpoint_state, restore_state
from imgrec.engine.loop import TrainState, fit

STEPS = 6


def _batches():
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g))
            for _ in range(STEPS)]  # fmt: skip


def _state() -> TrainState:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    return TrainState(model=net, optimizer=opt, scheduler=sched, epochs=3)


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([t.flatten().float() for t in model.state_dict().values()])


class _Spy(Callback):
    """Records the weights validation saw and the weights each epoch's first step started from."""

    def __init__(self) -> None:
        self.validated: list[torch.Tensor] = []
        self.epoch_starts: list[torch.Tensor] = []

    def on_epoch_start(self, state: TrainState) -> None:
        self.epoch_starts.append(_flat(state.model))

    def on_validation_start(self, state: TrainState) -> None:
        self.validated.append(_flat(state.model))


def test_validation_sees_the_average_and_training_continues_from_the_trained_weights() -> None:
    plain, averaged = _state(), _state()
    spy_plain, spy_avg = _Spy(), _Spy()
    average = WeightAverage(0.9)
    fit(plain, _batches(), lambda m: {}, [spy_plain])
    fit(averaged, _batches(), lambda m: {}, [average, spy_avg])  # the average runs first...
    # ...yet the steps are those of the plain run: training never sees the average
    for a, b in zip(spy_plain.epoch_starts, spy_avg.epoch_starts, strict=True):
        assert torch.equal(a, b)
    # what validation saw (and the network after fit) is the average, not the trained weights
    for trained, seen in zip(spy_plain.validated, spy_avg.validated, strict=True):
        assert not torch.allclose(trained, seen)
    floats = [t for t in averaged.model.state_dict().values() if t.is_floating_point()]
    assert all(torch.equal(t, s) for t, s in zip(floats, average.shadow, strict=True))
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(1.0)


class _KillAfter(Callback):
    def on_epoch_end(self, state: TrainState, record: dict) -> None:
        self.saved = checkpoint_state(state, {})  # what the Checkpointer writes
        if state.epoch == 1:
            raise KeyboardInterrupt  # a kill -9 right after the checkpoint


def test_a_resumed_run_continues_the_same_average_from_the_same_weights() -> None:
    whole = _state()
    fit(whole, _batches(), lambda m: {}, [WeightAverage(0.9)])

    killed, killer = _state(), _KillAfter()
    with pytest.raises(KeyboardInterrupt):
        fit(killed, _batches(), lambda m: {}, [WeightAverage(0.9), killer])
    saved = killer.saved
    assert "weight_average" in saved["extra"]  # the shadow and the trained weights
    resumed = _state()
    restore_state(resumed, saved)
    fit(resumed, _batches(), lambda m: {}, [WeightAverage(0.9)])
    assert resumed.step == whole.step == 3 * STEPS
    assert torch.equal(_flat(resumed.model), _flat(whole.model))
