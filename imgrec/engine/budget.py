"""Time-budgeted training: time the first steps, plan the run to end inside the budget.

:class:`TimeBudget` is a :class:`~imgrec.engine.loop.Callback` of the shared loop, so every
task gets it by passing one callback. It times the steps of this machine (after a few warm-up
steps) and the cost of each epoch boundary (validation, checkpoint), then sets the run's
:class:`~imgrec.engine.optim.Horizon` (the schedule's length in steps) and ``state.epochs`` so
that training, its last validation and a ``reserve`` for the work after ``fit`` end within
``seconds`` of ``started``. It re-plans as it goes (a shared machine speeds up and slows down)
and stops the loop when the planned steps are done or the time is up::

    horizon = Horizon(total_steps=epochs * steps_per_epoch)    # a guess until measured
    sched = build_scheduler("onecycle", opt, total_steps=horizon, warmup_steps=20)
    budget = TimeBudget(45, horizon=horizon, started=t0, max_steps=epochs * steps_per_epoch)
    fit(state, batches, validate, callbacks=[budget, ProgressBar(), Checkpointer(...)])

The plan lives in ``state.plan`` (``time_budget``, ``total_steps``, ``spent``...), which the
checkpoint keeps: a resumed run continues the same schedule with the time the killed one had
spent already counted. Put the budget before the ``Checkpointer`` in the callback list.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from imgrec.engine.loop import Callback, TrainState
from imgrec.engine.optim import Horizon

WARM_STEPS = 3  # a process's first steps are slow (allocation, kernel choice): not timed
MEASURE_STEPS = 6  # steps timed before the first plan
BOUNDARY_GUESS = 0.1  # an epoch boundary's cost, as a share of the epoch, until one is timed
SMOOTHING = 0.1  # weight of the newest step in the running step time


class TimeBudget(Callback):
    """Plan and stop training so that it ends ``seconds`` after ``started``.

    ``started`` is a ``time.perf_counter()`` value (default: now), e.g. the start of the
    task's ``train()`` so data loading counts; ``reserve`` is the time kept for the work after
    ``fit`` (the final evaluation). ``max_steps`` caps the plan (a run that would gain nothing
    from more epochs); ``min_steps`` is the fewest it plans, even past the budget (a usable
    model on a slow or busy machine; :meth:`describe` says when the floor overruns the
    budget). ``log`` receives one line when the first plan is made.
    """

    def __init__(
        self,
        seconds: float,
        *,
        horizon: Horizon | None = None,
        started: float | None = None,
        reserve: float = 0.0,
        max_steps: int | None = None,
        min_steps: int = 0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.seconds = max(float(seconds), 1e-9)
        self.horizon = horizon
        self.started = time.perf_counter() if started is None else started
        self.reserve = reserve
        self.max_steps = max_steps
        self.min_steps = min(min_steps, max_steps) if max_steps is not None else min_steps
        self.log = log
        self.origin = self.started  # elapsed = now - origin (moved back by a resumed run)
        self.steps_per_epoch = 0
        self.step_seconds: float | None = None
        self.boundary_seconds: float | None = None
        self._timed = 0  # steps of this process seen
        self._last: float | None = None  # when the previous batch ended
        self._boundary = False  # the next batch is the first of an epoch
        self.fitting_steps = 0  # the steps the budget itself affords (the last plan)

    # --- the clock ---------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self.origin

    def fraction(self) -> float:
        """The share of the budget spent (setup and earlier processes of the run included)."""
        return self.elapsed() / self.seconds

    def _boundary_cost(self) -> float:
        if self.boundary_seconds is not None:
            return self.boundary_seconds
        if self.step_seconds is None:
            return 0.0
        return BOUNDARY_GUESS * self.step_seconds * max(1, self.steps_per_epoch)

    def _time_left(self) -> float:
        """Seconds left for steps: the budget less the last validation and the reserve."""
        return self.seconds - self.reserve - self._boundary_cost() - self.elapsed()

    # --- hooks -------------------------------------------------------------------------
    def on_fit_start(self, state: TrainState, steps_per_epoch: int) -> None:
        self.steps_per_epoch = steps_per_epoch or 1
        saved = state.plan
        if saved.get("time_budget"):  # resumed: the killed run's time counts
            self.origin = self.started - float(saved.get("spent", 0.0))
            if self.horizon is not None and saved.get("total_steps"):
                self.horizon.total_steps = int(saved["total_steps"])
        state.plan.pop("ends_at", None)  # a killed process's projection
        state.plan.update(time_budget=self.seconds, spent=round(self.elapsed(), 3))
        if self.horizon is not None:
            state.plan.setdefault("total_steps", self.horizon.total_steps)
        if self._out_of_time(state) or self._done(state):
            state.stop = True

    def on_epoch_start(self, state: TrainState) -> None:
        self._boundary = self._last is not None

    def on_batch_end(self, state: TrainState, loss: float, batch_size: int) -> None:
        now = time.perf_counter()
        self._timed += 1
        if self._last is not None and self._timed > WARM_STEPS:
            gap = now - self._last
            if self._boundary and self.step_seconds is not None:
                self._add_boundary(gap - self.step_seconds)
            elif not self._boundary:
                self._add_step(gap)
        self._boundary = False
        self._last = now
        if self._timed >= WARM_STEPS + MEASURE_STEPS and self.step_seconds is not None:
            first = "step_seconds" not in state.plan
            self._plan(state)
            if first and self.log is not None:
                self.log(self.describe(state))
        if self._done(state) or self._out_of_time(state):
            state.stop = True

    def on_epoch_end(self, state: TrainState, record: dict[str, Any]) -> None:
        # The checkpoint written after this keeps the plan and the time spent so far.
        state.plan["spent"] = round(self.elapsed(), 3)

    # --- planning ----------------------------------------------------------------------
    def _add_step(self, seconds: float) -> None:
        if self.step_seconds is None:
            self.step_seconds = seconds
        else:
            self.step_seconds += SMOOTHING * (seconds - self.step_seconds)

    def _add_boundary(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        if self.boundary_seconds is None:
            self.boundary_seconds = seconds
        else:
            self.boundary_seconds += 0.5 * (seconds - self.boundary_seconds)

    def _out_of_time(self, state: TrainState) -> bool:
        return self._time_left() <= 0 and state.step >= self.min_steps

    def _done(self, state: TrainState) -> bool:
        total = state.plan.get("total_steps")
        return total is not None and "step_seconds" in state.plan and state.step >= total

    def _plan(self, state: TrainState) -> None:
        """Steps that fit in the time left: each costs a step, plus its share of a boundary."""
        assert self.step_seconds is not None
        per_step = self.step_seconds + self._boundary_cost() / self.steps_per_epoch
        more = max(0, math.floor(self._time_left() / per_step))
        total = state.step + more
        self.fitting_steps = total
        if self.max_steps is not None:
            total = min(total, self.max_steps)
        total = max(total, state.step, self.min_steps)
        state.plan.update(
            total_steps=total,
            step_seconds=round(self.step_seconds, 5),
            boundary_seconds=round(self._boundary_cost(), 3),
            spent=round(self.elapsed(), 3),
        )
        state.plan["ends_at"] = round(self.projected_end(state), 1)
        state.epochs = max(state.epoch + 1, math.ceil(total / self.steps_per_epoch))
        if self.horizon is not None:
            self.horizon.total_steps = max(total, 1)

    def projected_end(self, state: TrainState) -> float:
        """When training should end, as a ``time.time()`` value."""
        steps = max(0, int(state.plan.get("total_steps", state.step)) - state.step)
        left = steps * (self.step_seconds or 0.0) + self._boundary_cost()
        if int(state.plan.get("total_steps", 0)) > self.fitting_steps:
            return time.time() + left  # the floor runs past the budget
        return time.time() + min(left, self.seconds - self.elapsed())

    def describe(self, state: TrainState) -> str:
        """One line: the measured speed and the plan that fits the budget."""
        total = int(state.plan["total_steps"])
        end = time.strftime("%H:%M:%S", time.localtime(self.projected_end(state)))
        over = ""
        if total > self.fitting_steps:
            over = (
                f" (the budget affords {self.fitting_steps / self.steps_per_epoch:.1f} epochs; "
                f"the floor of {self.min_steps / self.steps_per_epoch:g} runs past it)"
            )
        return (
            f"time budget {self.seconds:g} s: {1000 * (self.step_seconds or 0):.0f} ms/step "
            f"measured, {total} steps planned ({total / self.steps_per_epoch:.1f} epochs), "
            f"training ends ~{end}{over}"
        )
