"""Time-budgeted training: the plan fits the measured step time, the schedule follows it, the
loop stops on time, and a resumed run continues the same plan with the time spent counted."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from train_fixtures import TINY, make_imagefolder

from imgrec.config import load_config
from imgrec.engine.budget import TimeBudget
from imgrec.engine.callbacks import Callback, checkpoint_state, restore_state
from imgrec.engine.loop import TrainState, fit
from imgrec.engine.optim import Horizon, build_scheduler
from imgrec.tasks.classify.recipe import ImageStats, resolve

STEP = 0.02  # seconds each fake step sleeps: the step time the budget must find
BUDGET = 2.0
STEPS_PER_EPOCH = 5


class _SlowBatches:
    """Batches of a 2->2 linear problem; each one takes ``STEP`` seconds to produce."""

    def __len__(self) -> int:
        return STEPS_PER_EPOCH

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for _ in range(STEPS_PER_EPOCH):
            time.sleep(STEP)
            yield torch.randn(4, 2, generator=g), torch.randint(0, 2, (4,), generator=g)


def _state(horizon: Horizon) -> TrainState:
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    sched = build_scheduler("onecycle", opt, total_steps=horizon, warmup_steps=2)
    return TrainState(model=net, optimizer=opt, scheduler=sched, epochs=1000)


def _validate(model: torch.nn.Module) -> dict[str, float]:
    time.sleep(2 * STEP)  # an epoch boundary costs about two steps
    return {"val_accuracy": 0.5}


class _KillAfter(Callback):
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.saved: dict | None = None

    def on_epoch_end(self, state: TrainState, record: dict) -> None:
        self.saved = checkpoint_state(state, {})  # what the Checkpointer writes
        if state.epoch >= self.epochs:
            raise KeyboardInterrupt  # a kill -9 right after the checkpoint


def test_the_plan_fits_the_measured_steps_and_the_schedule_anneals_on_time() -> None:
    horizon = Horizon(total_steps=1000 * STEPS_PER_EPOCH)  # the guess before timing
    state = _state(horizon)
    budget = TimeBudget(BUDGET, horizon=horizon)
    lines: list[str] = []
    budget.log = lines.append
    started = time.perf_counter()
    fit(state, _SlowBatches(), _validate, [budget])
    took = time.perf_counter() - started

    plan = state.plan
    step = plan["step_seconds"]
    assert step >= STEP  # the sleep is a floor (a busy machine wakes the sleeper late)
    assert took <= BUDGET + step + 0.1  # ends inside the budget, give or take the last step
    # the plan fills the budget with steps of the measured length, not the 10,000 guessed
    assert 0.6 * BUDGET / step <= plan["total_steps"] <= BUDGET / step
    assert horizon.total_steps == plan["total_steps"]
    assert state.step == plan["total_steps"] or took >= BUDGET - step  # by steps or the clock
    assert state.epochs == state.epoch  # the planned epochs, the last one cut at the step
    lr = state.optimizer.param_groups[0]["lr"]
    assert lr < 0.1 if state.step == plan["total_steps"] else lr < 0.5  # annealed by the end
    assert len(lines) == 1 and "steps planned" in lines[0] and "training ends ~" in lines[0]


def test_a_resumed_run_keeps_the_plan_and_the_time_already_spent() -> None:
    horizon = Horizon(total_steps=1000 * STEPS_PER_EPOCH)
    state = _state(horizon)
    killer = _KillAfter(epochs=2)
    with pytest.raises(KeyboardInterrupt):
        fit(state, _SlowBatches(), _validate, [TimeBudget(3.0, horizon=horizon), killer])
    saved = killer.saved
    assert saved is not None and saved["plan"]["time_budget"] == 3.0
    planned, spent = saved["plan"]["total_steps"], saved["plan"]["spent"]
    assert 0 < spent < 3.0 and planned > saved["step"]

    fresh = Horizon(total_steps=1000 * STEPS_PER_EPOCH)
    resumed = _state(fresh)
    restore_state(resumed, saved)
    budget = TimeBudget(3.0, horizon=fresh)
    budget.on_fit_start(resumed, STEPS_PER_EPOCH)
    assert fresh.total_steps == planned  # the schedule continues where it was
    assert budget.elapsed() == pytest.approx(spent, abs=0.1)  # the killed run's time counts
    # the learning rate goes on from the checkpoint's, not from a new warm-up
    assert resumed.optimizer.param_groups[0]["lr"] == saved["optimizer"]["param_groups"][0]["lr"]
    started = time.perf_counter()
    fit(resumed, _SlowBatches(), _validate, [budget])
    assert spent + time.perf_counter() - started <= 3.0 + resumed.plan["step_seconds"] + 0.1
    assert resumed.step > saved["step"]


def test_a_budget_spent_before_the_resume_trains_no_more() -> None:
    state = _state(Horizon(10))
    state.plan = {"time_budget": 1.0, "spent": 1.5, "total_steps": 10, "step_seconds": 0.1}
    fit(state, _SlowBatches(), _validate, [TimeBudget(1.0)])
    assert state.step == 0 and state.history == []


def test_the_recipe_budgets_small_images_unless_epochs_are_given() -> None:
    small = ImageStats(n_sampled=8, median_width=28, median_height=28, grayscale=True)
    cfg, notes = resolve(load_config(), small, "cpu")
    assert (cfg.time_budget, cfg.epochs) == (45.0, 30)
    assert "time_budget=45" in notes[1]
    fixed, _ = resolve(load_config(overrides={"epochs": 4}), small, "cpu")
    assert (fixed.time_budget, fixed.epochs) == (None, 4)
    capped, _ = resolve(load_config(overrides={"epochs": 4, "time_budget": 9}), small, "cpu")
    assert (capped.time_budget, capped.epochs) == (9.0, 4)
    photos = ImageStats(n_sampled=8, median_width=300, median_height=200, grayscale=False)
    transfer, _ = resolve(load_config(overrides={"time_budget": 60}), photos, "cpu")
    assert (transfer.time_budget, transfer.epochs) == (60.0, 30)  # the recipe's epochs: a cap
    plain, _ = resolve(load_config(), photos, "cpu")
    assert (plain.time_budget, plain.epochs) == (None, 30)


def test_cli_time_budget_plans_the_run_and_records_it(tmp_path: Path) -> None:
    from imgrec.cli import main
    from imgrec.engine.checkpoint import load_checkpoint

    data = make_imagefolder(tmp_path / "data", n_train=24)
    out = tmp_path / "run"
    sets = [x for key in ("threads", "lr", "scheduler", "warmup_epochs", "report")
            for x in ("--set", f"{key}={TINY[key]}")]  # fmt: skip
    sets += ["--set", "arch_kwargs=" + str(TINY["arch_kwargs"]).replace("'", '"')]
    started = time.perf_counter()
    code = main(["train", str(data), "--model", "small_resnet", "--batch-size", "16",
                 "--time-budget", "4", "--out", str(out), "-q", *sets])  # fmt: skip
    assert code == 0
    assert time.perf_counter() - started < 4 + 6  # training ended on time; imports and the
    plan = load_checkpoint(out / "checkpoint.pt")["plan"]  # final evaluation come on top
    assert plan["time_budget"] == 4.0 and plan["total_steps"] >= 9
    assert plan["spent"] <= 4.0 + 0.5
    saved = load_config(out / "config.yaml")
    assert (saved.time_budget, saved.epochs) == (4.0, 30)
    # a budgeted run validates the last third of its planned epochs (and the one it ends on)
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert "val_accuracy" in history[-1]
    if len(history) > 4:
        assert "val_accuracy" not in history[0], history
    card = json.loads((out / "model" / "model.json").read_text())
    assert card["metrics"]["best_epoch"] >= 1 and "accuracy" in card["metrics"]


def test_a_budget_must_be_positive_and_detection_keeps_its_older_name() -> None:
    from imgrec.errors import ConfigError
    from imgrec.tasks.detect.recipe import make_config

    with pytest.raises(ConfigError, match="time_budget"):
        load_config(overrides={"time_budget": 0})
    assert make_config(max_seconds=30).time_budget == 30  # max_seconds: the older name
    assert make_config(time_budget=12.5).time_budget == 12.5
    with pytest.raises(ConfigError, match="time_budget"):
        make_config(time_budget=-1)


def test_the_floor_trains_past_a_budget_too_small_for_it_and_says_so() -> None:
    horizon = Horizon(total_steps=1000 * STEPS_PER_EPOCH)
    state = _state(horizon)
    floor = 8 * STEPS_PER_EPOCH  # 40 steps of >= 0.02 s: well past a 0.3 s budget
    budget = TimeBudget(0.3, horizon=horizon, min_steps=floor)
    lines: list[str] = []
    budget.log = lines.append
    fit(state, _SlowBatches(), _validate, [budget])
    assert state.step == floor == state.plan["total_steps"] == horizon.total_steps
    assert state.epoch == 8
    [line] = lines
    assert "runs past it" in line and "floor of 8" in line, line


def test_the_recipe_budget_brings_its_floor_and_an_explicit_budget_does_not() -> None:
    small = ImageStats(n_sampled=8, median_width=28, median_height=28, grayscale=True)
    auto, _ = resolve(load_config(), small, "cpu")
    assert (auto.time_budget, auto.min_epochs) == (45.0, 6)
    mine, _ = resolve(load_config(overrides={"time_budget": 10}), small, "cpu")
    assert (mine.time_budget, mine.min_epochs) == (10.0, None)
