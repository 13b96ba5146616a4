"""What every task's ``train()`` shares around :func:`imgrec.engine.loop.fit`.

The result type, the device and thread policy, the run directory's default name and the
``--resume`` checks live here once, so a task's ``train`` only builds its model, its batches
and its card::

    device = pick_device(cfg.device)
    torch.set_num_threads(cfg.threads or auto_threads())
    saved = resume_checkpoint(run_dir, fingerprint)       # with resume=True
    return TrainResult(str(run_dir), str(run_dir / "model"), metrics, state.history)
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from imgrec.engine.checkpoint import CHECKPOINT_FILE, load_checkpoint
from imgrec.errors import ConfigError

CONFIG_FILE = "config.yaml"


@dataclass
class TrainResult:
    """Where a run's outputs are, with its final val metrics and per-epoch history."""

    run_dir: str
    model_dir: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def default_run_dir(prefix: str = "train") -> Path:
    """``runs/<prefix>-YYYYmmdd-HHMMSS`` under the current directory."""
    return Path("runs") / _dt.datetime.now().strftime(f"{prefix}-%Y%m%d-%H%M%S")


def auto_threads() -> int:
    """CPU threads for torch: one per core.

    Busy cores are handled by OpenMP's passive waiting (``OMP_WAIT_POLICY=PASSIVE``, set by
    ``imgrec`` unless the user set it): with spinning threads two busy cores turned a 3 s
    mnist5k epoch into 30-90 s. Choosing fewer threads from the load average was tried and
    dropped: a run's own previous load made the next run single-threaded and 50% slower.
    """
    return os.cpu_count() or 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when a GPU is visible, else CPU; ``cuda`` without one is a ``ConfigError``.
    A distributed rank takes GPU ``local_rank`` (``cuda:<local_rank>``)."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device=cuda was requested but no CUDA GPU is available", hint="--set device=cpu"
        )
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and local_rank:
        return torch.device("cuda", local_rank)
    return torch.device(name)


def require_resumable(run_dir: Path) -> Path:
    """The saved ``config.yaml`` of an interrupted run; ``ConfigError`` when it cannot resume."""
    saved = run_dir / CONFIG_FILE
    if not saved.is_file() or not (run_dir / CHECKPOINT_FILE).is_file():
        raise ConfigError(
            f"cannot resume: {run_dir} has no {CONFIG_FILE} and {CHECKPOINT_FILE}",
            hint="pass the --out directory of the interrupted run",
        )
    return saved


def resume_checkpoint(run_dir: Path, fingerprint: str) -> dict[str, Any]:
    """``checkpoint.pt`` of ``run_dir``, refused when the data's fingerprint changed since."""
    saved = load_checkpoint(run_dir / CHECKPOINT_FILE)
    if saved.get("fingerprint") != fingerprint:
        raise ConfigError(
            f"cannot resume {run_dir}: the dataset changed since the checkpoint was written",
            hint="resume with the same data, or start a new run with another --out",
        )
    return saved
