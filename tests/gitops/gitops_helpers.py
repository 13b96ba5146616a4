"""Helpers for the git-driven deployment tests: a checkout holding manifests/ and a store."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from imgrec.gitops.overlay import write_production

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def run_git(*args: str, cwd: Path) -> str:
    """``git ARGS`` in ``cwd`` with a fixed identity; returns stdout."""
    identity = ["-c", "user.name=tester", "-c", "user.email=tester@localhost"]
    proc = subprocess.run(
        ["git", *identity, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return proc.stdout


def make_checkout(root: Path, store: str, version: int) -> Path:
    """``root`` as a git checkout of ``manifests/`` whose local overlay names ``store@version``
    (the production overlay names version 1 of ``root/../prod-store``, which does not exist)."""
    root.mkdir(parents=True)
    run_git("init", "--quiet", "-b", "main", cwd=root)
    shutil.copytree(MANIFESTS, root / "manifests")
    write_production(root / "manifests/overlays/local", store, version)
    write_production(root / "manifests/overlays/production", str(root.parent / "prod-store"), 1)
    run_git("add", "-A", cwd=root)
    run_git("commit", "--quiet", "-m", "initial overlays", cwd=root)
    return root


def servable_model(root: Path, classes: list[str], seed: int) -> Path:
    """A small untrained ``small_resnet`` model directory the server can load (32 px)."""
    import torch

    from imgrec.models.card import ModelCard, Preprocessing, save_model_dir
    from imgrec.models.registry import build_model

    torch.manual_seed(seed)
    net = build_model("small_resnet", num_classes=len(classes))
    card = ModelCard(
        architecture="small_resnet",
        classes=classes,
        preprocessing=Preprocessing(input_size=32, resize_size=32),
    )
    out = root / f"model-{seed}"
    save_model_dir(net, card, out)
    return out


def png_b64(seed: int) -> str:
    """A random 40x40 PNG, base64 (for V1 requests)."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    arr = np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()
