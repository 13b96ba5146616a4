"""``evaluate(model, data, split="val")`` for detectors: COCO mAP on boxes in original pixels.

The detector sees exactly what ``predict`` feeds it (the card's preprocessing); its boxes are
mapped back to the original image before they are compared with the labels, so the figures
measure the whole path users get.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgrec.data.detection import load_detection_data
from imgrec.data.detection.types import DetectionRecord
from imgrec.errors import ImageError
from imgrec.evaluation.detection import best_f1_threshold, evaluate_detections
from imgrec.models.card import Preprocessing
from imgrec.models.detectors import Detector

HEADLINE_KEYS = ("map", "map50", "map75", "precision", "recall", "f1", "score_threshold", "n")


def card_threshold(card: Any) -> float:
    """The score threshold a model card recommends (chosen on val at training; else 0.3)."""
    value = card.config.get("score_threshold")
    return 0.3 if value is None else float(value)


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The summary numbers kept in ``model.json``."""
    return {k: metrics[k] for k in HEADLINE_KEYS if k in metrics}


def detect_images(
    det: Detector, images: Sequence[Any], pre: Preprocessing
) -> list[dict[str, np.ndarray]]:
    """Run ``det`` on PIL images; boxes come back in each image's own pixels (clipped)."""
    from imgrec.data.transforms import eval_transform

    if not images:
        return []
    tf = eval_transform(pre)
    batch = torch.stack([tf(im) for im in images])  # (B, 3, S, S)
    out = []
    for im, o in zip(images, det.predict(batch), strict=True):
        sx, sy = im.width / pre.input_size, im.height / pre.input_size
        boxes = o["boxes"].numpy().astype(np.float64) * np.array([sx, sy, sx, sy])
        boxes = np.clip(boxes, 0, [im.width, im.height, im.width, im.height])
        out.append({"boxes": boxes, "scores": o["scores"].numpy(), "labels": o["labels"].numpy()})
    return out


def _batches(
    records: Sequence[DetectionRecord], size: int
) -> Iterator[list[tuple[DetectionRecord, Any]]]:
    from imgrec.data.images import load_image

    batch = []
    for record in records:
        try:
            batch.append((record, load_image(record.path)))
        except ImageError:
            continue  # listed in the data report; not part of the evaluation
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def evaluate_records(
    det: Detector,
    records: Sequence[DetectionRecord],
    classes: Sequence[str],
    pre: Preprocessing,
    *,
    score_threshold: float | None = 0.3,
    batch_size: int = 16,
    crosscheck: bool = True,
) -> dict[str, Any]:
    """Detect on ``records`` and score against their boxes (``evaluate_detections`` keys).

    ``score_threshold=None`` picks the threshold with the best F1 on these records (reported
    as ``score_threshold``; mAP does not depend on it).
    """
    gts, dts, sizes = [], [], []
    for batch in _batches(records, batch_size):
        for (record, image), found in zip(
            batch, detect_images(det, [im for _, im in batch], pre), strict=True
        ):
            gts.append((record.boxes, record.labels))
            dts.append((found["boxes"], found["scores"], found["labels"]))
            sizes.append((image.width, image.height))
    if score_threshold is None:
        score_threshold = best_f1_threshold(gts, dts, len(classes))
    return evaluate_detections(
        gts, dts, classes, score_threshold=score_threshold, image_sizes=sizes, crosscheck=crosscheck
    )


def evaluate(
    model: Any,
    data: str | Path,
    *,
    split: str = "val",
    out_dir: str | Path | None = None,
    score_threshold: float | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Evaluate a detection model directory on a split of a detection dataset.

    Returns the ``imgrec evaluate --json`` dict: ``map`` (mAP@[.5:.95]), ``map50``, ``map75``,
    ``classes``, ``per_class`` AP, precision/recall at the threshold, ``confusion_matrix``.
    With ``out_dir``: also ``metrics.json``, ``figures/`` (PR curves, confusion matrix) and
    ``report.html``. Example: ``evaluate("runs/d1/model", "data/digits-detect")["map50"]``.
    """
    from imgrec.models.detectors import load_detector

    det, card = model if isinstance(model, tuple) else load_detector(str(model))
    dataset = load_detection_data(data, check_leakage=False)
    if list(dataset.classes) != list(card.classes):
        from imgrec.errors import DatasetError

        raise DatasetError(
            f"data classes {dataset.classes[:5]} differ from model classes {card.classes[:5]}",
            hint="evaluate on data labelled with the model's classes",
        )
    threshold = score_threshold if score_threshold is not None else card_threshold(card)
    metrics = evaluate_records(
        det, dataset.split(split), card.classes, card.preprocessing, score_threshold=threshold
    )
    metrics["split"] = split
    if out_dir is not None:
        write_evaluation(metrics, Path(out_dir))
    return metrics


def write_evaluation(
    metrics: dict[str, Any], out_dir: Path, history: list[dict[str, Any]] | None = None
) -> None:
    """``metrics.json``, ``figures/pr_curves.png`` + ``confusion_matrix.png``, ``report.html``."""
    from imgrec.tasks.detect.figures import write_detection_figures

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    figures = write_detection_figures(metrics, out_dir / "figures", history=history)
    from imgrec.evaluation.report import write_report

    context = {
        k: (round(v, 4) if isinstance(v, float) else v) for k, v in headline(metrics).items()
    }
    write_report(
        out_dir / "report.html",
        {"per_class": _ap_table(metrics)},
        figures,
        title="imgrec detection evaluation",
        context=context,
    )


def _ap_table(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "AP": v["ap"],
            "AP50": v["ap50"],
            "precision": v["precision"],
            "recall": v["recall"],
            "support": v["support"],
        }
        for name, v in metrics["per_class"].items()
    }
