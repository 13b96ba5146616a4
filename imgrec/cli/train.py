"""`imgrec train DATA`: train a model and print where the model, metrics and report are."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from imgrec.cli.app import ARGV, app
from imgrec.errors import ConfigError


@app.command("train")
def train_command(
    data: str = typer.Argument(..., help="Dataset: folder, s3:// prefix, CSV manifest."),
    task: str = typer.Option(None, "--task", help="classify or detect (default: from the data)."),
    model: str = typer.Option("auto", "--model", help="Architecture (`imgrec architectures`)."),
    pretrained: bool = typer.Option(
        None, "--pretrained/--no-pretrained", help="Start from ImageNet weights."
    ),
    weights: str = typer.Option(None, "--weights", help="Initial weights (safetensors)."),
    freeze: str = typer.Option(None, "--freeze", help="none, backbone, or first:N."),
    epochs: int = typer.Option(None, "--epochs", help="Epochs (default: the recipe's)."),
    time_budget: float = typer.Option(
        None,
        "--time-budget",
        min=0.001,
        help="Seconds for the run (data loading to the last epoch; the evaluation and report "
        "follow): the step speed is measured and the schedule planned to fit. With --epochs: "
        "the most epochs it may plan.",
    ),
    img_size: int = typer.Option(None, "--img-size", help="Input size in pixels."),
    batch_size: int = typer.Option(None, "--batch-size", help="Training batch size."),
    out: str = typer.Option(None, "--out", help="Run directory (default runs/train-<time>)."),
    config: str = typer.Option(None, "--config", help="YAML config file."),
    sets: list[str] = typer.Option([], "--set", help="Config override KEY=VALUE (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    seed: int = typer.Option(None, "--seed", help="Random seed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    nproc: int = typer.Option(
        1,
        "--nproc",
        min=1,
        help="Processes for data-parallel training on this machine (torchrun; gloo on CPU, "
        "NCCL on GPU). --batch-size is per process.",
    ),
) -> None:
    """Train a classifier (or detector) and write RUN_DIR/model, metrics.json and report.html."""
    from imgrec.config import parse_key_values
    from imgrec.tasks import get_task, task_for_data

    if resume and not out:
        raise ConfigError("--resume needs --out RUN_DIR", hint="the run directory to continue")
    spec = get_task(task or task_for_data(data))
    if nproc > 1 and not spec.distributed:
        raise ConfigError(
            f"task {spec.name} does not train with several processes yet",
            hint="drop --nproc (one process)",
        )
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        raise typer.Exit(_launch(nproc, ARGV))
    given: dict[str, Any] = {
        "model": model, "epochs": epochs, "img_size": img_size, "batch_size": batch_size,
        "out": out, "config": config, "pretrained": pretrained, "weights": weights,
        "freeze": freeze, "seed": seed, "resume": resume or None, "quiet": quiet or None,
        "time_budget": time_budget,
    }  # fmt: skip
    # Only what the user gave: each task keeps its own defaults for the rest.
    options = {k: v for k, v in given.items() if v is not None}
    options.update(parse_key_values(sets))
    result = spec.train(data, **options)
    if os.environ.get("RANK", "0") != "0":
        return  # rank 0 prints where the run is
    run_dir = Path(result.run_dir)
    metrics = result.metrics or {}
    summary = ", ".join(
        f"{k} {metrics[k]:.4f}" for k in spec.headline_metrics if isinstance(metrics.get(k), float)
    )  # fmt: skip
    typer.echo(f"model:   {result.model_dir}")
    typer.echo(f"metrics: {run_dir / 'metrics.json'}" + (f"  ({summary})" if summary else ""))
    report = run_dir / "report.html"
    if report.exists():
        typer.echo(f"report:  {report}")
    typer.echo(f"run:     {os.fspath(run_dir)}")


def _without_nproc(args: Sequence[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def _launch(nproc: int, args: Sequence[str]) -> int:
    """``imgrec ARGS`` in ``nproc`` processes under torchrun (one machine, a free port)."""
    from imgrec.engine.run import auto_threads

    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, auto_threads() // nproc)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "imgrec", *_without_nproc(args)]  # fmt: skip
    return subprocess.run(command, env=env, check=False).returncode
