"""Evaluation pictures as PNG files (matplotlib's Agg canvas; no display, no global backend).

Each function draws one picture and returns the path it wrote::

    plot_confusion_matrix(metrics["confusion_matrix"], metrics["classes"], "figures/cm.png")
    write_figures("run/figures", metrics, history="run/history.jsonl")  # all of them

Class names are shown as plain text (no mathtext, control characters replaced, long names cut).
matplotlib loads on the first picture, not on import; the first time it runs on a machine it
builds its font cache (seconds, minutes with thousands of fonts), and a line on stderr says so.
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from PIL import Image

from imgrec.evaluation.calibration import ReliabilityData
from imgrec.visualize import safe_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100
MAX_ANNOTATED_CLASSES = 25  # above this the confusion matrix cells carry no numbers


F = TypeVar("F", bound=Callable[..., Path])


def _quiet_glyphs(func: F) -> F:
    """Class names in scripts DejaVu lacks (CJK...) draw as boxes; that is not worth a warning."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Path:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class Mistake:
    """A wrong prediction to show: the image, its true and predicted label and the score."""

    image: Image.Image
    true_label: str
    pred_label: str
    score: float


def new_figure(width: float, height: float, dpi: int = DPI) -> Figure:
    """A matplotlib ``Figure`` on the Agg canvas (no display, no global backend)."""
    _announce_font_cache()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


@functools.cache
def _announce_font_cache() -> None:
    import matplotlib  # its font manager (which builds the cache) is not loaded yet

    if not any(Path(matplotlib.get_cachedir()).glob("fontlist-v*.json")):
        print(
            "matplotlib is building its font cache (once on this machine; may take a while) ...",
            file=sys.stderr,
            flush=True,
        )


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", bbox_inches="tight")
    return out


def _text(name: str, limit: int = 24) -> str:
    return safe_text(name, limit)


@_quiet_glyphs
def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]] | np.ndarray, classes: Sequence[str], path: str | Path
) -> Path:
    """Row-normalized confusion matrix (rows = true class) with the counts in each cell."""
    counts = np.asarray(matrix, dtype=np.int64)
    n = len(classes)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    side = min(max(4.0, 0.45 * n + 2), 30.0)
    fig = new_figure(side + 1, side)
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    names = [_text(c) for c in classes]
    ax.set_xticks(range(n), names, rotation=90 if n > 6 else 0, parse_math=False)
    ax.set_yticks(range(n), names, parse_math=False)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (row-normalized, counts in cells)")
    if n <= MAX_ANNOTATED_CLASSES:
        for i in range(n):
            for j in range(n):
                if counts[i, j] or i == j:
                    color = "white" if share[i, j] > 0.5 else "black"
                    text = f"{share[i, j]:.2f}\n({counts[i, j]})"
                    ax.text(j, i, text, ha="center", va="center", color=color, fontsize=7)
    return _save(fig, path)


@_quiet_glyphs
def plot_per_class(per_class: Mapping[str, Mapping[str, float]], path: str | Path) -> Path:
    """Grouped precision / recall / F1 bars, one group per class (support in the tick label)."""
    names = list(per_class)
    n = len(names)
    fig = new_figure(min(max(6.0, 0.5 * n + 2), 40.0), 4.5)
    ax = fig.add_subplot()
    x = np.arange(n)
    for offset, key in zip((-0.27, 0.0, 0.27), ("precision", "recall", "f1"), strict=True):
        ax.bar(x + offset, [per_class[c][key] for c in names], width=0.27, label=key)
    ticks = [f"{_text(c)} ({int(per_class[c].get('support', 0))})" for c in names]
    ax.set_xticks(x, ticks, rotation=90 if n > 6 else 0, parse_math=False)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title("Per-class precision, recall and F1 (support)")
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def read_history(history: str | Path | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Epoch records from a ``history.jsonl`` path (blank or broken lines skipped) or a list."""
    if isinstance(history, (str, Path)):
        records = []
        for line in Path(history).read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill mid-write
            if isinstance(record, dict):
                records.append(record)
        return records
    return [dict(r) for r in history]


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, r in enumerate(records):
        value = r.get(key)
        if isinstance(value, (int, float)) and np.isfinite(value):
            xs.append(float(r.get("epoch", i + 1)))
            ys.append(float(value))
    return xs, ys


def _curve(ax: Axes, records: Sequence[Mapping[str, Any]], keys: Sequence[str], title: str) -> None:
    for key in keys:
        xs, ys = _series(records, key)
        if xs:
            ax.plot(xs, ys, marker="o", markersize=3, label=key)
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()


@_quiet_glyphs
def plot_training_curves(
    history: str | Path | Sequence[Mapping[str, Any]], path: str | Path
) -> Path:
    """Losses, validation accuracy and learning rate per epoch (from ``history.jsonl``)."""
    records = read_history(history)
    fig = new_figure(13, 3.8)
    axes = fig.subplots(1, 3)
    _curve(axes[0], records, ("train_loss", "val_loss"), "Loss")
    _curve(axes[1], records, ("val_accuracy",), "Validation accuracy")
    _curve(axes[2], records, ("lr",), "Learning rate")
    fig.tight_layout()
    return _save(fig, path)


@_quiet_glyphs
def plot_reliability(data: ReliabilityData, path: str | Path) -> Path:
    """Reliability diagram: accuracy per confidence bin against the diagonal, with ECE."""
    fig = new_figure(5, 5)
    ax = fig.add_subplot()
    width = np.diff(data.edges)
    centers = data.edges[:-1] + width / 2
    filled = data.count > 0
    ax.bar(
        centers[filled],
        data.accuracy[filled],
        width=width[filled],
        edgecolor="black",
        label="accuracy",
    )
    ax.bar(
        centers[filled],
        (data.confidence - data.accuracy)[filled],
        bottom=data.accuracy[filled],
        width=width[filled],
        color="red",
        alpha=0.3,
        label="gap to confidence",
    )
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (ECE = {data.ece:.4f})")
    ax.legend(loc="upper left")
    return _save(fig, path)


@_quiet_glyphs
def plot_worst_mistakes(mistakes: Sequence[Mistake], path: str | Path, columns: int = 4) -> Path:
    """A grid of wrong predictions (give them highest score first) with true/pred and score."""
    n = max(len(mistakes), 1)
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    fig = new_figure(3 * cols, 3.2 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax in axes:
        ax.axis("off")
    if not mistakes:
        axes[0].text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=14)
    for ax, m in zip(axes, mistakes, strict=False):
        thumb = m.image.convert("RGB")
        thumb.thumbnail((256, 256))
        ax.imshow(np.asarray(thumb))
        title = f"true: {_text(m.true_label, 18)}\npred: {_text(m.pred_label, 18)} ({m.score:.2f})"
        ax.set_title(title, fontsize=9, parse_math=False)
    fig.suptitle("Worst mistakes (most confident wrong predictions)")
    return _save(fig, path)


def write_figures(
    out_dir: str | Path,
    metrics: Mapping[str, Any],
    *,
    history: str | Path | Sequence[Mapping[str, Any]] | None = None,
    reliability: ReliabilityData | None = None,
    mistakes: Sequence[Mistake] | None = None,
) -> dict[str, Path]:
    """Write every picture the inputs allow into ``out_dir``; returns ``{name: path}``.

    Names: ``confusion_matrix``, ``per_class``, ``curves`` (needs ``history``),
    ``reliability`` (needs ``reliability``), ``worst_mistakes`` (needs ``mistakes``).
    """
    out = Path(out_dir)
    figures = {
        "confusion_matrix": plot_confusion_matrix(
            metrics["confusion_matrix"], metrics["classes"], out / "confusion_matrix.png"
        ),
        "per_class": plot_per_class(metrics["per_class"], out / "per_class.png"),
    }
    if history is not None and read_history(history):
        figures["curves"] = plot_training_curves(history, out / "curves.png")
    if reliability is not None:
        figures["reliability"] = plot_reliability(reliability, out / "reliability.png")
    if mistakes is not None:
        figures["worst_mistakes"] = plot_worst_mistakes(mistakes, out / "worst_mistakes.png")
    return figures
