"""Data-parallel training: per-rank shards, and a real 2-process gloo run that equals one
process with the doubled batch and resumes at world size 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_fixtures import TINY, make_imagefolder

from imgrec.engine.checkpoint import load_checkpoint
from imgrec.engine.distributed import World, rank_batches, steps_per_epoch
from imgrec.errors import ConfigError

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("n", [3, 7, 16, 33, 34, 35, 64])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_each_sample_is_used_once_per_epoch_across_ranks(n: int, size: int) -> None:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    shards = [rank_batches(order, 8, World(rank=r, size=size)) for r in range(size)]
    steps = steps_per_epoch(n, 8, World(size=size))
    assert all(len(s) == steps for s in shards)  # same number of steps on every rank
    for step in range(steps):
        parts = [s[step] for s in shards]
        assert all(len(p) >= 1 for p in parts)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    used = torch.cat([idx for s in shards for idx in s])
    assert sorted(used.tolist()) == list(range(n))


def test_one_rank_takes_the_plain_batches() -> None:
    order = torch.arange(20)
    batches = rank_batches(order, 8, World())
    assert [b.tolist() for b in batches] == [list(range(8)), list(range(8, 16)), [16, 17, 18, 19]]


def test_a_rank_shares_the_global_batch_contiguously() -> None:
    order = torch.arange(32)
    assert [b.tolist() for b in rank_batches(order, 8, World(rank=1, size=2))] == [
        list(range(8, 16)),
        list(range(24, 32)),
    ]


def test_fewer_samples_than_processes_is_an_error() -> None:
    with pytest.raises(ConfigError, match="cannot be shared by 3 processes"):
        rank_batches(torch.arange(2), 8, World(rank=0, size=3))


def _run_cli(command: list[str]) -> subprocess.CompletedProcess[str]:
    """``command`` with this checkout first on the path; it must succeed."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def _close(
    a: list[dict], b: list[dict], keys=("train_loss", "val_loss", "val_accuracy"), rel=1e-4
) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        for key in keys:  # same global batches, summed in another order: float rounding only
            assert ra[key] == pytest.approx(rb[key], rel=rel, abs=1e-6), (key, ra, rb)


@pytest.mark.slow
def test_two_gloo_processes_equal_one_and_resume_at_world_size_one(tmp_path: Path) -> None:
    from imgrec.tasks.classify.train import train

    data = make_imagefolder(tmp_path / "data", n_train=16)  # 48 images, 3 steps of 16
    # per-image augmentation draws differ by rank; float32 (bf16 would round the ranks' sums
    # apart by more than the tolerance)
    options = {**TINY, "augment": "none", "amp": False}
    single = train(data, out=tmp_path / "one", epochs=3, **options)

    two = tmp_path / "two procs"
    arch = json.dumps(TINY["arch_kwargs"])
    command = [
        sys.executable, "-m", "imgrec", "train", str(data), "--out", str(two), "--nproc", "2",
        "--epochs", "2", "--batch-size", "8", "--model", "small_resnet", "-q",
        "--set", "threads=1", "--set", "lr=0.01", "--set", "scheduler=constant",
        "--set", "warmup_epochs=0", "--set", "augment=none", "--set", "report=false",
        "--set", f"arch_kwargs={arch}", "--set", "amp=false",
    ]  # fmt: skip
    done = _run_cli(command)
    assert done.stdout.count("model:") == 1  # rank 0 alone reports (and writes)
    _close(_history(two), single.history[:2])
    assert load_checkpoint(two / "checkpoint.pt")["world_size"] == 2

    # the world-size-2 checkpoint continues in one process with the same global batch
    resumed = train(data, out=two, resume=True, epochs=3, **options)
    _close(resumed.history, single.history)
    saved = load_checkpoint(two / "checkpoint.pt")
    assert saved["world_size"] == 1 and saved["step"] == 3 * 3
    assert resumed.metrics["accuracy"] == pytest.approx(single.metrics["accuracy"])


def test_nproc_is_refused_for_a_task_that_trains_in_one_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from imgrec.cli import main
    from imgrec.tasks import TASKS, get_task

    one_process = dataclasses.replace(get_task("detect"), distributed=False)
    monkeypatch.setitem(TASKS._items, "detect", one_process)
    # before any process is launched: one error line, no torchrun
    assert main(["train", str(tmp_path), "--task", "detect", "--nproc", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error[invalid_config]: task detect does not train with several")


@pytest.mark.slow
def test_detection_trains_in_two_gloo_processes_and_resumes_in_one(tmp_path: Path) -> None:
    from imgrec.data.detection.sample import write_digits_detect
    from imgrec.tasks.detect.train import train

    write_digits_detect(tmp_path / "digits", n_train=8, n_val=4, seed=3)
    data = tmp_path / "digits" / "data.yaml"
    options = {"img_size": 96, "threads": 1, "progress": False}
    single = train(data, out=tmp_path / "one", epochs=3, batch_size=4, **options)
    two = tmp_path / "two procs"
    command = [
        sys.executable, "-m", "imgrec", "train", str(data), "--task", "detect", "--out", str(two),
        "--nproc", "2", "--epochs", "2", "--batch-size", "2", "--img-size", "96",
        "--set", "threads=1", "-q",
    ]  # fmt: skip
    done = _run_cli(command)
    assert done.stdout.count("metrics:") == 1  # rank 0 alone reports (and writes)
    history = _history(two)
    # the same global batches of 4; FCOS normalises its loss by the positives of each rank's
    # batch, not the global one, so the curves agree to ~1e-2, not to float rounding
    _close(history, single.history[:2], keys=("train_loss",), rel=2e-2)
    assert load_checkpoint(two / "checkpoint.pt")["world_size"] == 2
    resumed = train(data, out=two, resume=True, epochs=3, batch_size=4, **options)
    _close(resumed.history, single.history, keys=("train_loss",), rel=2e-2)
    assert load_checkpoint(two / "checkpoint.pt")["world_size"] == 1
    assert (two / "model" / "model.json").is_file() and "map50" in resumed.metrics


def test_resume_at_another_world_size_moves_the_schedule_to_the_next_epoch() -> None:
    from imgrec.engine.callbacks import checkpoint_state, restore_state
    from imgrec.engine.loop import TrainState
    from imgrec.engine.optim import build_scheduler

    def state(world: World, steps_per_epoch: int) -> TrainState:
        net = torch.nn.Linear(2, 2)
        opt = torch.optim.SGD(net.parameters(), lr=1.0)
        sched = build_scheduler("cosine", opt, total_steps=4 * steps_per_epoch, warmup_steps=0)
        return TrainState(model=net, optimizer=opt, scheduler=sched, epochs=4, world=world)

    two = state(World(rank=0, size=2), steps_per_epoch=3)  # 3 steps per epoch at 2 processes
    for _ in range(2 * 3):
        two.optimizer.step()
        two.scheduler.step()
    two.epoch, two.step = 2, 6
    saved = checkpoint_state(two, {})
    one = state(World(), steps_per_epoch=6)  # the same data in 6 steps at 1 process
    restore_state(one, saved, steps_per_epoch=6)
    assert one.step == 12 and one.scheduler.last_epoch == 12
    # half-way through the run at both sizes: the same learning rate
    assert one.optimizer.param_groups[0]["lr"] == pytest.approx(two.optimizer.param_groups[0]["lr"])
    same = state(World(rank=0, size=2), steps_per_epoch=3)
    restore_state(same, saved, steps_per_epoch=3)  # same world size: the saved schedule as is
    assert same.step == 6 and same.scheduler.last_epoch == 6
