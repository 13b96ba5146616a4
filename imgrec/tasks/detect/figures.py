"""Detection pictures: PR curves (IoU 0.5), per-class AP, detection confusion matrix, curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from imgrec.evaluation.plots import new_figure as _figure
from imgrec.evaluation.plots import plot_confusion_matrix


def plot_pr_curves(metrics: dict[str, Any], path: Path) -> Path:
    """Precision against recall at IoU 0.5, one line per class with boxes, and their mean."""
    recall = np.asarray(metrics["pr_curves"]["recall"])
    precision = np.asarray(metrics["pr_curves"]["precision"])  # (K, 101)
    fig = _figure(7, 5)
    ax = fig.add_subplot()
    present = [
        k for k, name in enumerate(metrics["classes"]) if metrics["per_class"][name]["support"]
    ]
    for k in present:
        name = metrics["classes"][k]
        ax.plot(
            recall,
            precision[k],
            linewidth=1,
            label=f"{name[:20]} {metrics['per_class'][name]['ap50'] or 0:.3f}",
        )
    if present:
        ax.plot(
            recall,
            precision[present].mean(0),
            color="black",
            linewidth=2.5,
            label=f"all classes mAP50 {metrics['map50']:.3f}",
        )
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title="Precision-recall (IoU 0.5)",
    )
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path


def plot_per_class_ap(metrics: dict[str, Any], path: Path) -> Path:
    """AP@[.5:.95] and AP50 bars per class (classes without boxes show no bar)."""
    names = list(metrics["classes"])
    fig = _figure(min(max(6.0, 0.5 * len(names) + 2), 40.0), 4)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    for offset, key in ((-0.2, "ap"), (0.2, "ap50")):
        ax.bar(
            x + offset, [metrics["per_class"][n][key] or 0.0 for n in names], width=0.4, label=key
        )
    ax.set_xticks(x, [n[:20] for n in names], rotation=90 if len(names) > 8 else 0)
    ax.set(ylim=(0, 1.05), title="Per-class AP")
    ax.legend()
    fig.savefig(path, bbox_inches="tight")
    return path


def plot_history(history: list[dict[str, Any]], path: Path) -> Path:
    """Training loss and validation mAP per epoch."""
    fig = _figure(10, 4)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    epochs = [h["epoch"] for h in history]
    left.plot(epochs, [h["train_loss"] for h in history], marker="o")
    left.set(xlabel="epoch", title="train loss")
    for key in ("val_map50", "val_map"):
        pts = [(h["epoch"], h[key]) for h in history if key in h]
        if pts:
            right.plot(*zip(*pts, strict=True), marker="o", label=key)
    right.set(xlabel="epoch", ylim=(0, 1), title="validation mAP")
    right.legend()
    fig.savefig(path, bbox_inches="tight")
    return path


def write_detection_figures(
    metrics: dict[str, Any], folder: Path, history: list[dict[str, Any]] | None = None
) -> dict[str, Path]:
    """All detection pictures into ``folder``; returns ``{name: path}`` for the HTML report."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = {
        "pr_curves": plot_pr_curves(metrics, folder / "pr_curves.png"),
        "per_class_ap": plot_per_class_ap(metrics, folder / "per_class_ap.png"),
        "confusion_matrix": plot_confusion_matrix(
            metrics["confusion_matrix"],
            [*metrics["classes"], "background"],
            folder / "confusion_matrix.png",
        ),
    }
    if history:
        figures["curves"] = plot_history(history, folder / "curves.png")
    return figures
