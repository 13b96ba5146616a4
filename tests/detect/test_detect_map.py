"""imgrec's detection mAP against pycocotools and faster-coco-eval on random boxes."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from imgrec.evaluation.detection import box_iou, evaluate_detections


def _random_case(seed: int, n_images: int = 12, n_classes: int = 4):
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for i in range(n_images):
        n_gt = 0 if i % 5 == 0 else int(rng.integers(1, 6))  # some images without boxes
        xy = rng.uniform(0, 150, size=(n_gt, 2))
        wh = rng.uniform(4, 80, size=(n_gt, 2))
        gt_boxes = np.concatenate([xy, xy + wh], axis=1)
        gt_labels = rng.integers(0, n_classes - 1, size=n_gt)  # the last class never has boxes
        # detections: jittered copies of some boxes (sometimes the wrong class) plus noise boxes
        jitter = gt_boxes + rng.normal(0, 4, size=gt_boxes.shape)
        keep = rng.random(n_gt) < 0.8
        n_noise = int(rng.integers(0, 4))
        nxy = rng.uniform(0, 150, size=(n_noise, 2))
        noise = np.concatenate([nxy, nxy + rng.uniform(4, 80, size=(n_noise, 2))], axis=1)
        boxes = np.concatenate([jitter[keep], noise])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        labels = np.concatenate([gt_labels[keep], rng.integers(0, n_classes, size=n_noise)])
        flip = rng.random(len(labels)) < 0.1
        labels[flip] = rng.integers(0, n_classes, size=int(flip.sum()))
        gts.append((gt_boxes, gt_labels))
        dts.append((boxes, rng.random(len(boxes)), labels))
    return gts, dts, [f"c{k}" for k in range(n_classes)]


def _reference(gts, dts, n_classes, tmp_path):
    """COCOeval run from JSON files written independently of imgrec's conversion."""
    images = [{"id": i + 7, "width": 300, "height": 300} for i in range(len(gts))]
    anns, res = [], []
    for i, (boxes, labels) in enumerate(gts):
        for b, c in zip(boxes, labels, strict=True):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 7,
                    "category_id": int(c) * 3 + 2,
                    "bbox": [*map(float, b[:2]), float(w), float(h)],
                    "area": float(w * h),
                    "iscrowd": 0,
                }
            )
    for i, (boxes, scores, labels) in enumerate(dts):
        for b, s, c in zip(boxes, scores, labels, strict=True):
            res.append(
                {
                    "image_id": i + 7,
                    "category_id": int(c) * 3 + 2,
                    "score": float(s),
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                }
            )
    cats = [{"id": k * 3 + 2, "name": f"c{k}"} for k in range(n_classes)]
    gt_file, dt_file = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_file.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    dt_file.write_text(json.dumps(res))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        ev = COCOeval(gt, gt.loadRes(str(dt_file)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_map_equals_pycocotools_on_random_boxes(seed, tmp_path):
    gts, dts, classes = _random_case(seed)
    ours = evaluate_detections(gts, dts, classes)
    ref = _reference(gts, dts, len(classes), tmp_path)
    for key, value in zip(("map", "map50", "map75"), ref.stats[:3], strict=True):
        assert abs(ours[key] - value) <= 1e-6, key
    # per-class AP: mean over IoU thresholds and recall points of COCOeval's precision
    for k, name in enumerate(classes):
        p = ref.eval["precision"][:, :, k, 0, -1]
        expected = float(p[p > -1].mean()) if (p > -1).any() else None
        got = ours["per_class"][name]["ap"]
        assert (got is None and expected is None) or abs(got - expected) <= 1e-6, name
    assert ours["per_class"]["c3"]["ap"] is None  # a class without ground truth
    assert ours["crosscheck"]["agrees"], ours["crosscheck"]


def test_class_with_boxes_but_no_detections_scores_zero():
    gts = [
        (np.array([[0, 0, 10, 10], [20, 20, 40, 40]]), np.array([0, 1])),
        (np.zeros((0, 4)), np.zeros(0)),
    ]
    dts = [
        (np.array([[0, 0, 10, 10]]), np.array([0.9]), np.array([0])),
        (np.zeros((0, 4)), np.zeros(0), np.zeros(0)),
    ]
    m = evaluate_detections(gts, dts, ["a", "b"])
    assert m["per_class"]["a"]["ap"] == pytest.approx(1.0)
    assert m["per_class"]["b"]["ap"] == 0.0
    assert m["map"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(0.5) and m["precision"] == pytest.approx(1.0)


def test_no_detections_at_all_is_zero_not_undefined():
    gts = [(np.array([[0, 0, 10, 10]]), np.array([0]))]
    m = evaluate_detections(gts, [(np.zeros((0, 4)), np.zeros(0), np.zeros(0))], ["a"])
    assert m["map"] == 0.0 and m["per_class"]["a"]["ap"] == 0.0


def test_confusion_matrix_counts_misclassified_missed_and_spurious():
    gts = [(np.array([[0, 0, 10, 10], [50, 50, 60, 60], [80, 80, 90, 90]]), np.array([0, 1, 1]))]
    dts = [
        (
            np.array([[0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 120, 120], [0, 0, 10, 10]]),
            np.array([0.9, 0.8, 0.7, 0.1]),
            np.array([0, 0, 1, 1]),
        )
    ]
    cm = np.array(
        evaluate_detections(gts, dts, ["a", "b"], score_threshold=0.5)["confusion_matrix"]
    )
    # rows true a, b, background; columns predicted a, b, background
    assert cm.tolist() == [[1, 0, 0], [1, 0, 1], [0, 1, 0]]


def test_box_iou_matches_torchvision():
    import torch
    from torchvision.ops import box_iou as tv_box_iou

    rng = np.random.default_rng(0)
    a = (
        np.sort(rng.uniform(0, 50, (7, 4)).reshape(7, 2, 2), axis=1)
        .transpose(0, 2, 1)
        .reshape(7, 4)
    )
    b = (
        np.sort(rng.uniform(0, 50, (5, 4)).reshape(5, 2, 2), axis=1)
        .transpose(0, 2, 1)
        .reshape(5, 4)
    )
    expected = tv_box_iou(torch.tensor(a), torch.tensor(b)).numpy()
    np.testing.assert_allclose(box_iou(a, b), expected, atol=1e-9)
