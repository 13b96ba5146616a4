"""Gate decisions: floor for the first model, minimum improvement, per-class regression."""

from __future__ import annotations

import pytest

from imgrec.errors import ConfigError
from imgrec.mlops.gate import GatePolicy, decide


def _metrics(acc: float, recalls: dict[str, float], ece: float = 0.05) -> dict:
    return {
        "accuracy": acc,
        "ece": ece,
        "classes": sorted(recalls),
        "per_class": {c: {"recall": r, "precision": r, "f1": r} for c, r in recalls.items()},
    }


def test_first_model_needs_only_the_floor() -> None:
    ok = decide(_metrics(0.9, {"a": 0.9, "b": 0.9}), None, GatePolicy(absolute_floor=0.8))
    assert ok.passed and "first model" in ok.reasons[-1]
    low = decide(_metrics(0.7, {"a": 0.7, "b": 0.7}), None, GatePolicy(absolute_floor=0.8))
    assert not low.passed and "misses the absolute floor" in low.reasons[0]


def test_improvement_and_class_regression() -> None:
    prod = _metrics(0.90, {"a": 0.95, "b": 0.85})
    policy = GatePolicy(min_improvement=0.01, max_class_regression=0.05)
    better = decide(_metrics(0.93, {"a": 0.94, "b": 0.92}), prod, policy, production_version=4)
    assert better.passed, better.reasons
    assert "vs production v4 0.9000: improvement +0.0300 meets" in better.reasons[1]
    assert better.class_deltas == {"a": pytest.approx(-0.01), "b": pytest.approx(0.07)}

    tie = decide(_metrics(0.905, {"a": 0.95, "b": 0.86}), prod, policy)
    assert not tie.passed and "misses the required +0.0100" in tie.reasons[1]

    # Better overall, but class 'a' drops by 0.15: refused, naming the class.
    skewed = decide(_metrics(0.95, {"a": 0.80, "b": 0.99}), prod, policy)
    assert not skewed.passed
    assert "1 classes regress on recall by more than 0.05: 'a' -0.1500" in skewed.reasons[2]


def test_lower_is_better_metric_and_bad_settings() -> None:
    policy = GatePolicy(metric="ece", min_improvement=0.0, absolute_floor=0.2)
    prod = _metrics(0.9, {"a": 0.9}, ece=0.10)
    assert decide(_metrics(0.9, {"a": 0.9}, ece=0.05), prod, policy).passed
    assert not decide(_metrics(0.9, {"a": 0.9}, ece=0.15), prod, policy).passed
    with pytest.raises(ConfigError, match="unknown gate metric"):
        GatePolicy(metric="acc")
    with pytest.raises(ConfigError, match="unknown gate settings"):
        GatePolicy.from_dict({"metrc": "accuracy"})
    with pytest.raises(ConfigError, match="no 'f1_macro'"):
        decide({"accuracy": 0.9}, None, GatePolicy(metric="f1_macro"))
