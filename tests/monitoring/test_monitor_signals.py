"""The tests behind the verdict: known answers, false-alarm control by simulation, and what
Evidently computes for the same data (its K-S is ours; its chi-square and MMD defaults are not
calibrated, which is why the verdict does not use them)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imgrec.monitoring.signals import (
    Signal,
    chi2_permutation_signal,
    clustered_chi2_signal,
    embedding_signal,
    higher_mean_signal,
    holm,
    ks_signal,
)


def test_holm_known_answer() -> None:
    signals = [
        Signal(n, "input", "ks", p_value=p)
        for n, p in zip("abcd", [0.001, 0.03, 0.011, 0.5], strict=True)
    ]
    assert holm(signals, alpha=0.05) is True
    # sorted p: 0.001 <= 0.05/4 (reject), 0.011 <= 0.05/3 (reject), 0.03 > 0.05/2 (stop)
    assert [s.drifted for s in signals] == [True, False, True, False]
    assert [s.threshold for s in signals] == [0.0125, 0.025, pytest.approx(0.05 / 3), 0.05]
    skipped = Signal("e", "input", "ks", note="window too small (n < 30)")
    assert holm([skipped], alpha=0.05) is None and skipped.drifted is None


def test_weighted_holm_known_answer() -> None:
    signals = [
        Signal(n, "input", "ks", p_value=p) for n, p in zip("abc", [0.004, 0.02, 0.03], strict=True)
    ]
    weights = {"a": 1.0, "b": 2.0, "c": 1.0}
    assert holm(signals, alpha=0.1, weights=weights) is True
    # order by p / w: a (0.004), b (0.01), c (0.03); levels 0.1*1/4, 0.1*2/3, 0.1*1/1
    assert [s.threshold for s in signals] == pytest.approx([0.025, 0.2 / 3, 0.1])
    assert [s.drifted for s in signals] == [True, True, True]
    heavy = [Signal("a", "input", "ks", p_value=0.06), Signal("b", "input", "ks", p_value=0.06)]
    assert holm(heavy, alpha=0.1) is False  # plain Holm: 0.06 > 0.1 / 2
    assert holm(heavy, alpha=0.1, weights={"a": 9.0}) is True  # 0.06 <= 0.1 * 9 / 10
    assert heavy[0].threshold == pytest.approx(0.09) and heavy[1].threshold == pytest.approx(0.1)


def test_higher_mean_p_value_matches_scipys_permutation_test() -> None:
    """Known answer: the one-sided p-value is scipy's permutation test of the difference in
    means (both Monte Carlo: equal within their sampling error); wrong direction -> ~1."""
    rng = np.random.default_rng(5)
    ref, cur = rng.exponential(1.0, 120), rng.exponential(1.25, 60)
    ours = higher_mean_signal("s", "prediction", ref, cur)
    theirs = stats.permutation_test(
        (cur, ref),
        lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
        alternative="greater",
        n_resamples=20_000,
        random_state=0,
    )
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=0.015)
    assert 0.005 < ours.p_value < 0.5  # a case where the answer is not trivially 0 or 1
    assert ours.statistic == pytest.approx(cur.mean() - ref.mean())
    lower = higher_mean_signal("s", "prediction", ref, rng.exponential(0.7, 60))
    assert lower.p_value is not None and lower.p_value > 0.9
    big = higher_mean_signal("s", "prediction", ref, rng.exponential(1.0, 500))  # n > m side
    assert big.p_value is not None and big.p_value > 0.01


def test_clustered_chi2_stays_calibrated_when_boxes_come_in_groups() -> None:
    """Boxes of one image share a label (a detector's crowd of one kind): counting boxes as
    independent (the plain permutation chi-square over boxes) over-alarms; permuting whole
    images keeps the false-alarm rate near alpha."""
    rng = np.random.default_rng(6)

    def images(n: int) -> list[list[str]]:
        return [[str(rng.integers(3))] * int(rng.integers(0, 6)) for _ in range(n)]

    alpha, trials, ours, naive = 0.05, 40, 0, 0
    for _ in range(trials):
        ref, cur = images(150), images(60)
        ours += clustered_chi2_signal("l", "detection", ref, cur).p_value <= alpha  # type: ignore[operator]
        flat_ref, flat_cur = [v for i in ref for v in i], [v for i in cur for v in i]
        naive += chi2_permutation_signal("l", "detection", flat_ref, flat_cur).p_value <= alpha  # type: ignore[operator]
    assert ours / trials <= 0.15 and naive / trials >= 0.3
    shifted = [["0"] * 3 for _ in range(60)]
    assert clustered_chi2_signal("l", "detection", images(150), shifted).p_value < 0.001  # type: ignore[operator]


def _reference(rng: np.random.Generator, m: int) -> dict:
    return {
        "labels": [str(v) for v in rng.choice(3, size=m, p=[0.5, 0.3, 0.2])],
        "conf": rng.beta(5, 1, m),
        "bright": rng.normal(0, 1, m),
        "contrast": rng.normal(0.3, 0.2, m),
        "emb": rng.normal(0, 1, (m, 8)),
    }


def _family(rng: np.random.Generator, ref: dict, n: int, shift: float = 0.0) -> list[Signal]:
    cur_labels = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    return [
        chi2_permutation_signal("label", "prediction", ref["labels"], [str(v) for v in cur_labels]),
        ks_signal("confidence", "prediction", ref["conf"], rng.beta(5, 1, n)),
        ks_signal("brightness", "input", ref["bright"], rng.normal(shift, 1, n)),
        ks_signal("contrast", "input", ref["contrast"], rng.normal(0.3, 0.2, n)),
        embedding_signal("embedding", ref["emb"], rng.normal(0, 1, (n, 8))),
    ]


def test_false_alarm_rate_is_at_most_alpha_by_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    """200 (reference, window) pairs from one distribution, the window as large as the
    reference (where a one-sample chi-square would over-alarm): Holm's verdict alarms at most
    alpha + 2 sigma of the time. (The guarantee is over the draw of both samples; for one
    fixed reference the rate varies around it -- docs/monitoring.md.)"""
    import imgrec.monitoring.signals

    monkeypatch.setattr(imgrec.monitoring.signals, "PERMUTATIONS", 400)  # p >= 1/401: enough at 0.1
    rng = np.random.default_rng(0)
    m, n, alpha, trials = 200, 200, 0.1, 200
    alarms = sum(bool(holm(_family(rng, _reference(rng, m), n), alpha)) for _ in range(trials))
    limit = alpha + 2 * np.sqrt(alpha * (1 - alpha) / trials)
    assert alarms / trials <= limit, f"false-alarm rate {alarms / trials:.3f} > {limit:.3f}"
    ref = _reference(rng, m)
    detected = sum(bool(holm(_family(rng, ref, n, shift=0.5), alpha)) for _ in range(30))
    assert detected >= 28  # and a real shift of one statistic is found


def _evidently_p(ref: list[str], cur: list[str], method: str) -> float:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(categorical_columns=["label"])
    snap = Report([ValueDrift(column="label", method=method, threshold=0.05)]).run(
        current_data=Dataset.from_pandas(pd.DataFrame({"label": cur}), data_definition=definition),
        reference_data=Dataset.from_pandas(
            pd.DataFrame({"label": ref}), data_definition=definition
        ),
    )
    return float(snap.dict()["metrics"][0]["value"])


def test_chi2_permutation_is_calibrated_where_evidentlys_chisquare_is_not() -> None:
    """Known answer: same label distribution, window 4x the reference. The permutation test
    rejects at about alpha; Evidently's ``chisquare`` (a one-sample test taking the reference
    counts as exact) rejects far more often."""
    rng = np.random.default_rng(1)
    p = [0.4, 0.3, 0.2, 0.1]
    ours = theirs = 0
    trials, alpha = 20, 0.05
    for _ in range(trials):
        ref = [str(v) for v in rng.choice(4, 100, p=p)]
        cur = [str(v) for v in rng.choice(4, 400, p=p)]
        ours += chi2_permutation_signal("label", "prediction", ref, cur).p_value <= alpha  # type: ignore[operator]
        theirs += _evidently_p(ref, cur, "chisquare") <= alpha
    assert ours / trials <= 0.15
    assert theirs / trials >= 0.3


def test_ks_p_value_is_evidentlys_value_drift() -> None:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    rng = np.random.default_rng(2)
    ref, cur = rng.normal(0, 1, 200), rng.normal(0.3, 1, 80)
    definition = DataDefinition(numerical_columns=["x"])
    snap = Report([ValueDrift(column="x", method="ks", threshold=0.01)]).run(
        current_data=Dataset.from_pandas(pd.DataFrame({"x": cur}), data_definition=definition),
        reference_data=Dataset.from_pandas(pd.DataFrame({"x": ref}), data_definition=definition),
    )
    value = snap.dict()["metrics"][0]["value"]
    ours = ks_signal("x", "input", ref, cur)
    assert value == pytest.approx(ours.p_value, rel=1e-12)
    assert ours.p_value == pytest.approx(stats.ks_2samp(ref, cur).pvalue, rel=1e-12)


def test_evidently_mmd_default_quantile_alarms_on_identical_data() -> None:
    """Why the verdict does not use Evidently's MMD with ``bootstrap=True``: its default
    ``quantile_probability=0.05`` compares with the 5th percentile of the null, so two samples
    of one distribution are flagged (known answer: no drift)."""
    from evidently.metrics.embeddings import MMDDriftMethod

    rng = np.random.default_rng(3)
    ref = pd.DataFrame(rng.normal(0, 1, (150, 8)))
    cur = pd.DataFrame(rng.normal(0, 1, (150, 8)))
    flagged = MMDDriftMethod(bootstrap=True)(cur.copy(), ref.copy())[1]
    assert flagged  # the pitfall
    ours = embedding_signal("embedding", ref.to_numpy(), cur.to_numpy())
    assert ours.p_value is not None and ours.p_value > 0.05


def test_small_windows_and_one_class() -> None:
    small = ks_signal("x", "input", np.ones(100), np.ones(10))
    assert small.p_value is None and small.note == "window too small (n < 30)"
    nan_heavy = ks_signal("x", "input", np.ones(100), np.r_[np.full(40, np.nan), np.ones(20)])
    assert nan_heavy.p_value is None and nan_heavy.n == 20
    one_class = chi2_permutation_signal("label", "prediction", ["a", "b"] * 50, ["a"] * 60)
    assert one_class.p_value is not None and one_class.p_value < 0.001  # a valid, strong test
    same = chi2_permutation_signal("label", "prediction", ["a"] * 50, ["a"] * 60)
    assert same.p_value == 1.0
