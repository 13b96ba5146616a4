"""Resumable checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

``checkpoint.pt`` holds the model, optimizer and scheduler state, the epoch just finished, the
training history and the RNG states of torch, numpy and Python, so a run killed with ``kill -9``
resumes exactly where the last complete checkpoint left it (BAD-INPUTS row 18). The file is
written to a temp file beside the target, fsynced, then renamed: a reader sees the previous or
the new complete checkpoint, never a torn one::

    save_checkpoint(run_dir / "checkpoint.pt", {"model": net.state_dict(), "epoch": 3, ...})
    state = load_checkpoint(run_dir / "checkpoint.pt")
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgrec import storage
from imgrec.errors import ModelError

CHECKPOINT_FILE = "checkpoint.pt"


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Serialize ``state`` (tensors, dicts, lists, numbers, strings) atomically to ``path``."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    storage.write_bytes(path, buffer.getvalue())  # atomic: temp file, fsync, rename


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``, no pickle fallback)."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(
            f"no checkpoint at {str(p)!r}",
            hint="--resume needs a run directory that holds checkpoint.pt from an earlier run",
        )
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors, truncated zip archives
        raise ModelError(
            f"checkpoint {str(p)!r} cannot be read safely ({exc})",
            hint="it is damaged or not an imgrec checkpoint; start a new run without --resume",
        ) from None
    if not isinstance(state, dict) or "epoch" not in state:
        raise ModelError(f"checkpoint {str(p)!r} is not an imgrec checkpoint")
    return state


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """The RNG states of torch (CPU, CUDA), numpy's global RNG and Python's ``random``."""
    np_state: Any = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["loader"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "loader" in state:
        generator.set_state(state["loader"])


def seed_everything(seed: int, *, deterministic: bool = True) -> torch.Generator:
    """Seed torch, numpy and Python; returns a torch Generator for data order (seeded too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # set both ways: a deterministic run earlier in the same process must not leave it on
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        torch.backends.cudnn.benchmark = False
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
