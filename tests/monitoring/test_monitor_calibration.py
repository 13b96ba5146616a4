"""The verdict's false-alarm rate as the monitor meets it: one fixed reference and unshifted
windows of *other* held-out images (never in the reference), all through the server's path."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eval_fixtures import write_color_images
from monitor_fixtures import CLASSES, Monitored
from PIL import Image

import imgrec.monitoring.signals as signals_module
from imgrec.monitoring.drift import WEIGHTS, detect
from imgrec.monitoring.reference import build_reference


def served_rows(model: Path, folder: Path) -> list[dict[str, Any]]:
    """The log rows the server writes for every image of ``folder`` (its decode, statistics,
    model and record builder: the reference builder's path)."""
    cols = build_reference(str(model), str(folder), split="all")["columns"]
    return [{k: v[i] for k, v in cols.items()} for i in range(len(cols["label"]))]


@pytest.mark.slow
def test_false_alarms_on_held_out_windows_disjoint_from_the_reference(
    monitored: Monitored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference: the fixture's 120 val images. Traffic: 180 other images of the same colours
    (other seeds). 200 windows of 40 resampled from them: the weighted-Holm verdict at
    alpha = 0.1 alarms at most alpha + 2 sigma of the time; the same images darkened (x0.6)
    are called drift in every window."""
    monkeypatch.setattr(signals_module, "PERMUTATIONS", 400)  # p >= 1/401: enough at 0.1
    held, dark = tmp_path / "held", tmp_path / "dark"
    for j, name in enumerate(CLASSES):
        for path in write_color_images(held / name, name, 60, seed=300 + j):
            (dark / name).mkdir(parents=True, exist_ok=True)
            pixels = np.asarray(Image.open(path), dtype=np.float32) * 0.6
            Image.fromarray(pixels.round().astype(np.uint8)).save(dark / name / path.name)
    clean, shifted = served_rows(monitored.model, held), served_rows(monitored.model, dark)
    reference_images = {p.read_bytes() for p in monitored.data.glob("val/*/*.png")}
    assert reference_images and not reference_images & {p.read_bytes() for p in held.glob("*/*")}
    rng = random.Random(0)
    alpha, trials, n = 0.1, 200, 40
    alarms = sum(
        bool(detect(monitored.reference, rng.sample(clean, n), alpha=alpha)[1])
        for _ in range(trials)
    )
    limit = alpha + 2 * np.sqrt(alpha * (1 - alpha) / trials)
    assert alarms / trials <= limit, f"false-alarm rate {alarms / trials:.3f} > {limit:.3f}"
    found = [detect(monitored.reference, rng.sample(shifted, n), alpha=alpha) for _ in range(20)]
    assert all(drift for _, drift in found)
    names = {s.name for signals, _ in found for s in signals}
    assert "low_confidence" in names and set(WEIGHTS) >= names - {"embedding"}
