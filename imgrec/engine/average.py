"""An exponential moving average (EMA) of the weights: what is validated, saved and kept.

:class:`WeightAverage` is a :class:`~imgrec.engine.loop.Callback` of the shared loop. After
every optimizer step it moves a shadow copy of the network's floating-point state (weights and
BatchNorm statistics) towards the trained one; for validation and the models saved at the end
of an epoch the shadow is swapped into the network, and the trained weights come back before
the next epoch's first step. After ``fit`` the network holds the average::

    fit(state, batches, validate, callbacks=[WeightAverage(0.99), Checkpointer(run_dir, save)])

Short schedules gain most: the average smooths the last, noisy steps of a run that had no
time to anneal. The decay warms up (``min(decay, (1 + t) / (10 + t))`` at step ``t``), so the
first epochs' average is not dominated by the random initialization. ``checkpoint.pt`` keeps
the shadow and the trained weights (``state.extra``), so ``--resume`` continues the same
average from the same weights.
"""

from __future__ import annotations

import torch

from imgrec.engine.distributed import unwrap
from imgrec.engine.loop import Callback, TrainState

KEY = "weight_average"  # this callback's entry in state.extra (and checkpoint.pt)


class WeightAverage(Callback):
    """EMA of the network's weights with ``decay`` per step (warmed up over the first steps)."""

    def __init__(self, decay: float = 0.99) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow: list[torch.Tensor] = []
        self.live: list[torch.Tensor] = []  # the network's tensors (state_dict views)
        self.swapped = False  # the network holds the average; the trained weights are aside
        self.trained: list[torch.Tensor] | None = None

    def on_fit_start(self, state: TrainState, steps_per_epoch: int) -> None:
        tensors = unwrap(state.model).state_dict()
        self.live = [t for t in tensors.values() if t.is_floating_point()]
        saved = state.extra.get(KEY)
        if saved:  # resumed: the checkpoint's network is the average, the trained weights aside
            pairs = zip(saved["shadow"], self.live, strict=True)
            self.shadow = [s.to(t.device).clone() for s, t in pairs]
            if saved.get("trained") is not None:
                with torch.no_grad():
                    torch._foreach_copy_(self.live, list(saved["trained"]))
        else:
            self.shadow = [t.detach().clone() for t in self.live]
        self.swapped, self.trained = False, None

    def on_batch_end(self, state: TrainState, loss: float, batch_size: int) -> None:
        t = state.step
        decay = min(self.decay, (1.0 + t) / (10.0 + t))
        with torch.no_grad():
            torch._foreach_lerp_(self.shadow, self.live, 1.0 - decay)

    def on_validation_start(self, state: TrainState) -> None:
        with torch.no_grad():
            self.trained = [t.clone() for t in self.live]
            torch._foreach_copy_(self.live, self.shadow)
        self.swapped = True
        # what checkpoint.pt keeps beside the network (which now holds the average)
        state.extra[KEY] = {"shadow": self.shadow, "trained": self.trained}

    def on_epoch_start(self, state: TrainState) -> None:
        if self.swapped and self.trained is not None:
            with torch.no_grad():
                torch._foreach_copy_(self.live, self.trained)
        self.swapped, self.trained = False, None
