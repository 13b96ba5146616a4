"""Metrics equal scikit-learn's (labels listed, zero_division=0), ECE equals a plain reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from imgrec.evaluation import classification_metrics, expected_calibration_error, reliability_data

TOL = 1e-12  # both sides do the same float64 divisions; only summation order may differ


def _sklearn_figures(y_true, y_pred, n_classes):
    labels = list(range(n_classes))
    out = {"accuracy": accuracy_score(y_true, y_pred)}
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=avg, zero_division=0
        )
        out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = p, r, f
    per = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    return out, per, cm


def _assert_equal_to_sklearn(y_true, y_pred, n_classes, probs=None):
    classes = [f"c{i}" for i in range(n_classes)]
    ours = classification_metrics(y_true, y_pred, probs, classes=classes)
    ref, (p, r, f, s), cm = _sklearn_figures(y_true, y_pred, n_classes)
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, abs=TOL, rel=0), key
    assert ours["confusion_matrix"] == cm.tolist()
    for i, name in enumerate(classes):
        got = ours["per_class"][name]
        assert got["precision"] == pytest.approx(p[i], abs=TOL, rel=0)
        assert got["recall"] == pytest.approx(r[i], abs=TOL, rel=0)
        assert got["f1"] == pytest.approx(f[i], abs=TOL, rel=0)
        assert got["support"] == s[i]
    assert ours["n"] == len(y_true)
    return ours


@pytest.mark.parametrize("seed", range(40))
def test_random_predictions_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 12))
    n = int(rng.integers(1, 200))
    y_true = rng.integers(0, n_classes, n)
    # mix of right answers and random ones; some classes end up never predicted
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, n_classes, n))
    _assert_equal_to_sklearn(y_true, y_pred, n_classes)


@pytest.mark.parametrize("seed", range(10))
def test_classes_absent_from_predictions_and_truth(seed):
    rng = np.random.default_rng(100 + seed)
    n_classes = 8
    # truth only uses classes 0..4, predictions only 2..6; class 7 appears nowhere
    y_true = rng.integers(0, 5, 60)
    y_pred = rng.integers(2, 7, 60)
    ours = _assert_equal_to_sklearn(y_true, y_pred, n_classes)
    assert ours["per_class"]["c7"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert ours["per_class"]["c0"]["precision"] == 0.0  # never predicted


def test_single_class_truth_and_perfect_predictions():
    y_true = np.zeros(17, dtype=int)
    _assert_equal_to_sklearn(y_true, y_true, 3)
    _assert_equal_to_sklearn(y_true, np.array([0] * 10 + [2] * 7), 3)
    ours = _assert_equal_to_sklearn(np.array([1]), np.array([1]), 1 + 1)
    assert ours["accuracy"] == 1.0


@pytest.mark.parametrize("seed", range(15))
def test_top5_equals_sklearn_top_k(seed):
    rng = np.random.default_rng(200 + seed)
    n_classes = int(rng.integers(3, 20))
    n = 80
    y_true = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes))
    if seed % 3 == 0:  # coarse scores make ties, which must break as scikit-learn does
        logits = np.round(logits)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y_pred = probs.argmax(axis=1)
    ours = _assert_equal_to_sklearn(y_true, y_pred, n_classes, probs)
    k = min(5, n_classes)
    expected = top_k_accuracy_score(y_true, probs, k=k, labels=list(range(n_classes)))
    assert ours["top5"] == pytest.approx(expected, abs=TOL, rel=0)


def test_top5_is_one_with_five_classes_or_fewer_and_none_without_probs():
    probs = np.full((4, 3), 1 / 3)
    ours = classification_metrics([0, 1, 2, 0], [1, 1, 1, 1], probs, classes=["a", "b", "c"])
    assert ours["top5"] == 1.0
    ours = classification_metrics([0, 1], [0, 0], classes=["a", "b"])
    assert ours["top5"] is None and ours["ece"] is None


def test_contract_keys_and_json_types():
    import json

    from imgrec.evaluation import METRIC_KEYS

    probs = np.array([[0.7, 0.3], [0.4, 0.6]])
    ours = classification_metrics([0, 0], [0, 1], probs, classes=["x", "y"])
    assert set(ours) == set(METRIC_KEYS)
    assert json.loads(json.dumps(ours)) == ours


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [([0, 3], [0, 1], "outside"), ([0, 1], [0], "labels but"), ([], [], "empty")],
)
def test_bad_inputs_are_refused(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(y_true, y_pred, classes=["a", "b"])


def _reference_ece(conf, correct, n_bins=15):
    """Guo et al.'s loop: bins (lo, hi], weighted |acc - conf|."""
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if lo == 0:
            inside |= conf == 0
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return total


@pytest.mark.parametrize("seed", range(20))
def test_ece_equals_reference_loop(seed):
    rng = np.random.default_rng(300 + seed)
    n = int(rng.integers(1, 500))
    conf = rng.random(n)
    if seed % 4 == 0:  # values exactly on bin edges land in the lower bin
        conf = rng.integers(0, 16, n) / 15
    correct = rng.random(n) < conf
    assert expected_calibration_error(conf, correct) == pytest.approx(
        _reference_ece(conf, correct), abs=TOL, rel=0
    )


def test_ece_from_metrics_uses_predicted_class_probability():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])
    ours = classification_metrics([0, 0, 1], [0, 1, 1], probs, classes=["a", "b"])
    conf = np.array([0.9, 0.6, 0.8])
    correct = np.array([True, False, True])
    assert ours["ece"] == pytest.approx(_reference_ece(conf, correct), abs=TOL, rel=0)


def test_reliability_data_counts_and_perfect_calibration():
    data = reliability_data(np.array([0.05, 0.05, 0.95, 1.0]), np.array([0, 0, 1, 1]), n_bins=10)
    assert data.count.tolist() == [2, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert data.accuracy[9] == 1.0 and data.confidence[9] == pytest.approx(0.975)
    with pytest.raises(ValueError, match="probabilities"):
        reliability_data(np.array([1.5]), np.array([True]))
