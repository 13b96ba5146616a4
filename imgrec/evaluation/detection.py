"""Detection metrics: COCO mAP from pycocotools, cross-checked against faster-coco-eval.

``evaluate_detections(ground_truth, detections, classes)`` returns the ``imgrec evaluate --json``
dict for a detector: ``map`` (mAP@[.5:.95]), ``map50``, ``map75``, ``map_small/medium/large``,
``classes``, ``per_class`` (``{class: {ap, ap50, precision, recall, support}}``), ``precision``
and ``recall`` at ``score_threshold`` (IoU 0.5, greedy matching by score, per class),
``confusion_matrix`` (rows: true class then ``background``; columns: predicted class then
``background``), ``n`` (images) and ``crosscheck`` (faster-coco-eval's mAP and the difference).

Conventions (those of COCOeval): a class with no ground truth in the split has ``ap: null``
and is left out of the means; a class with ground truth but no detections has AP 0; images
without boxes take part (their detections are false positives). With no detections at all,
every AP is 0 (COCOeval itself would report -1, "undefined").

>>> gt = [(np.array([[0, 0, 10, 10]]), np.array([0]))]
>>> dt = [(np.array([[0, 0, 10, 10]]), np.array([0.9]), np.array([0]))]
>>> evaluate_detections(gt, dt, ["a"])["map"]
1.0
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

GroundTruth = tuple[np.ndarray, np.ndarray]  # boxes (N, 4) xyxy, labels (N,)
Detections = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (M, 4), scores (M,), labels (M,)

_STAT_KEYS = ("map", "map50", "map75", "map_small", "map_medium", "map_large")
CROSSCHECK_TOLERANCE = 1e-6
THRESHOLD_CANDIDATES = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 .. 0.95


def coco_documents(
    ground_truth: Sequence[GroundTruth],
    detections: Sequence[Detections],
    classes: Sequence[str],
    image_sizes: Sequence[tuple[int, int]] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """COCO ground truth and results (image id = index + 1, category id = label + 1)."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for i, (boxes, labels) in enumerate(ground_truth):
        width, height = image_sizes[i] if image_sizes else (0, 0)
        images.append({"id": i + 1, "width": int(width), "height": int(height)})
        for box, label in zip(
            np.asarray(boxes, float).reshape(-1, 4), np.asarray(labels).reshape(-1), strict=True
        ):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": int(label) + 1,
                    "bbox": [float(box[0]), float(box[1]), w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    for i, (boxes, scores, labels) in enumerate(detections):
        for box, score, label in zip(
            np.asarray(boxes, float).reshape(-1, 4),
            np.asarray(scores).reshape(-1),
            np.asarray(labels).reshape(-1),
            strict=True,
        ):
            results.append(
                {
                    "image_id": i + 1,
                    "category_id": int(label) + 1,
                    "score": float(score),
                    "bbox": [
                        float(box[0]),
                        float(box[1]),
                        float(box[2] - box[0]),
                        float(box[3] - box[1]),
                    ],
                }
            )
    categories = [{"id": k + 1, "name": str(name)} for k, name in enumerate(classes)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def run_cocoeval(
    gt_doc: dict[str, Any], results: list[dict[str, Any]], *, backend: str = "pycocotools"
) -> Any:
    """Run COCOeval (``pycocotools`` or ``faster_coco_eval``) quietly; returns the evaluator."""
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    with contextlib.redirect_stdout(io.StringIO()):  # both print progress; stdout carries JSON
        gt = COCO()
        gt.dataset = {k: list(v) for k, v in gt_doc.items()}
        gt.createIndex()
        dt = gt.loadRes(list(results))
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _per_class_ap(precision: np.ndarray, k: int, iou_index: int | None = None) -> float | None:
    # precision: (T ious, R recall points, K classes, A areas, M max-dets); area all, 100 dets
    p = precision[:, :, k, 0, -1] if iou_index is None else precision[iou_index, :, k, 0, -1]
    p = p[p > -1]
    return float(p.mean()) if p.size else None


def evaluate_detections(
    ground_truth: Sequence[GroundTruth],
    detections: Sequence[Detections],
    classes: Sequence[str],
    *,
    score_threshold: float = 0.3,
    image_sizes: Sequence[tuple[int, int]] | None = None,
    crosscheck: bool = True,
) -> dict[str, Any]:
    """COCO metrics plus precision/recall and a confusion matrix at ``score_threshold``."""
    if len(ground_truth) != len(detections):
        raise ValueError(
            f"{len(ground_truth)} ground-truth images but {len(detections)} detection lists"
        )
    gt_doc, results = coco_documents(ground_truth, detections, classes, image_sizes)
    support = np.bincount(
        [a["category_id"] - 1 for a in gt_doc["annotations"]], minlength=len(classes)
    )
    metrics: dict[str, Any] = {"classes": list(classes), "n": len(ground_truth)}
    per_ap: list[float | None] = [0.0 if support[k] else None for k in range(len(classes))]
    per_ap50 = list(per_ap)
    curves = np.zeros((len(classes), 101))
    if results and gt_doc["annotations"]:
        ev = run_cocoeval(gt_doc, results)
        metrics.update(
            {key: float(max(v, 0.0)) for key, v in zip(_STAT_KEYS, ev.stats[:6], strict=True)}
        )
        precision = ev.eval["precision"]
        per_ap = [_per_class_ap(precision, k) for k in range(len(classes))]
        per_ap50 = [_per_class_ap(precision, k, 0) for k in range(len(classes))]
        curves = np.clip(precision[0, :, :, 0, -1].T, 0, None)  # (K, 101) at IoU 0.5
        if crosscheck:
            fast = run_cocoeval(gt_doc, results, backend="faster_coco_eval")
            diff = float(np.max(np.abs(np.asarray(fast.stats[:6]) - np.asarray(ev.stats[:6]))))
            metrics["crosscheck"] = {
                "faster_coco_eval_map": float(fast.stats[0]),
                "max_abs_diff": diff,
                "agrees": diff <= CROSSCHECK_TOLERANCE,
            }
    else:
        metrics.update(dict.fromkeys(_STAT_KEYS, 0.0))
    counts = match_counts(ground_truth, detections, len(classes), score_threshold)
    metrics.update(_threshold_metrics(counts, score_threshold))
    metrics["per_class"] = {
        name: {
            "ap": per_ap[k],
            "ap50": per_ap50[k],
            "precision": _ratio(counts["tp"][k], counts["tp"][k] + counts["fp"][k]),
            "recall": _ratio(counts["tp"][k], counts["tp"][k] + counts["fn"][k]),
            "support": int(support[k]),
        }
        for k, name in enumerate(classes)
    }
    metrics["confusion_matrix"] = counts["confusion"].tolist()
    metrics["pr_curves"] = {
        "recall": np.linspace(0, 1, 101).round(2).tolist(),
        "precision": curves.tolist(),
    }
    return metrics


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def _threshold_metrics(counts: dict[str, np.ndarray], threshold: float) -> dict[str, Any]:
    tp, fp, fn = (int(counts[k].sum()) for k in ("tp", "fp", "fn"))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"score_threshold": threshold, "precision": precision, "recall": recall, "f1": f1}


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: (N, 4) x (M, 4) -> (N, M)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_counts(
    ground_truth: Sequence[GroundTruth],
    detections: Sequence[Detections],
    n_classes: int,
    score_threshold: float,
    iou_threshold: float = 0.5,
) -> dict[str, np.ndarray]:
    """Per-class TP/FP/FN at a score threshold and the detection confusion matrix.

    TP/FP/FN: per class, detections in score order each take the unmatched same-class box of
    highest IoU >= ``iou_threshold``. Confusion matrix: each kept detection, in score order,
    takes the unmatched box (any class) of highest IoU; unmatched boxes count as predicted
    ``background``, unmatched detections as true ``background``.
    """
    tp, fp, fn = (np.zeros(n_classes, np.int64) for _ in range(3))
    confusion = np.zeros((n_classes + 1, n_classes + 1), np.int64)
    for (gt_boxes, gt_labels), (boxes, scores, labels) in zip(
        ground_truth, detections, strict=True
    ):
        gt_labels, labels, scores = (
            np.asarray(gt_labels).reshape(-1),
            np.asarray(labels).reshape(-1),
            np.asarray(scores).reshape(-1),
        )
        keep = scores >= score_threshold
        boxes, labels = np.asarray(boxes, float).reshape(-1, 4)[keep], labels[keep]
        order = np.argsort(-scores[keep], kind="stable")
        boxes, labels = boxes[order], labels[order]
        iou = box_iou(boxes, gt_boxes)  # (M, N)
        for k in range(n_classes):
            d, g = np.flatnonzero(labels == k), np.flatnonzero(gt_labels == k)
            hit = _greedy(iou[np.ix_(d, g)], iou_threshold)
            tp[k] += len(hit)
            fp[k] += len(d) - len(hit)
            fn[k] += len(g) - len(hit)
        pairs = _greedy(iou, iou_threshold)
        for det, gt in pairs.items():
            confusion[gt_labels[gt], labels[det]] += 1
        for gt in set(range(len(gt_labels))) - set(pairs.values()):
            confusion[gt_labels[gt], n_classes] += 1
        for det in set(range(len(labels))) - set(pairs):
            confusion[n_classes, labels[det]] += 1
    return {"tp": tp, "fp": fp, "fn": fn, "confusion": confusion}


def best_f1_threshold(
    ground_truth: Sequence[GroundTruth],
    detections: Sequence[Detections],
    n_classes: int,
    candidates: Sequence[float] = THRESHOLD_CANDIDATES,
) -> float:
    """The score threshold (from ``candidates``) with the best F1 at IoU 0.5; ties: the lower."""
    best, best_f1 = float(candidates[0]), -1.0
    for threshold in candidates:
        f1 = _threshold_metrics(
            match_counts(ground_truth, detections, n_classes, threshold), threshold
        )["f1"]
        if f1 > best_f1 + 1e-12:
            best, best_f1 = float(threshold), f1
    return best


def _greedy(iou: np.ndarray, threshold: float) -> dict[int, int]:
    """Rows (detections, best first) each take the free column of highest IoU >= threshold."""
    taken: dict[int, int] = {}
    free = np.ones(iou.shape[1], bool)
    for row in range(iou.shape[0]):
        candidates = np.where(free, iou[row], -1.0)
        if candidates.size and candidates.max() >= threshold:
            col = int(candidates.argmax())
            taken[row] = col
            free[col] = False
    return taken
