"""The deployment gate: should a candidate model replace the production model?

Both models are evaluated on the same data (``imgrec evaluate --json`` dicts); the policy says
which metric decides, by how much the candidate must improve, how far any single class may
regress, and the absolute floor every model (and so the very first one) must clear::

    policy = GatePolicy(metric="accuracy", min_improvement=0.002, max_class_regression=0.05)
    decision = decide(candidate_metrics, production_metrics, policy, production_version=3)
    decision.passed, decision.reasons

Every reason is a readable sentence with the numbers that led to it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from imgrec.errors import ConfigError
from imgrec.tasks import all_tasks


def _collect(attr: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(m for spec in all_tasks() for m in getattr(spec, attr)))


GATE_METRICS = _collect("gate_metrics")
"""Every metric the gate can decide on: the union of the tasks' ``TaskSpec.gate_metrics``
(classification: accuracy ... ece; detection: map, map50, map75, precision, recall, f1)."""
LOWER_IS_BETTER = frozenset(_collect("lower_is_better"))
PER_CLASS_METRICS = _collect("per_class_metrics")
"""Per-class keys: classification has recall/precision/f1, detection ap/ap50/precision/recall."""


@dataclass(frozen=True)
class GatePolicy:
    """Gate settings; each is a pipeline parameter (``gate_<name>``)."""

    metric: str = "accuracy"
    """The deciding metric (one of ``GATE_METRICS``; ``ece`` is lower-is-better; detection:
    ``map``, ``map50``, ``map75``)."""
    min_improvement: float = 0.002
    """Candidate minus production must be at least this (may be negative to allow ties)."""
    max_class_regression: float = 0.05
    """Largest allowed drop of any class's ``per_class_metric`` versus production."""
    per_class_metric: str = "recall"
    absolute_floor: float = 0.5
    """Every candidate must reach this on ``metric`` (for ``ece``: stay at or below it)."""
    min_regression_z: float = 1.645
    """A class's drop beyond ``max_class_regression`` counts only when it is also beyond
    sampling noise: ``drop / sqrt((a(1-a) + b(1-b)) / n) >= min_regression_z`` (``a``, ``b``
    the two models' values, ``n`` the class's images; one-sided 5 % by default). Small slices
    (a held-out new-data class of 15 images) then cannot fail the gate on one or two images;
    0 counts every drop beyond the tolerance. Without ``support`` every drop counts."""
    max_base_drop: float = 0.01
    """With new data (:func:`decide_with_new_data`): how far ``metric`` on the base validation
    set may fall; ``min_improvement`` then applies to the held-out new data."""
    new_data_per_class_metric: str = "f1"
    """The per-class metric on the held-out new data. Not recall: a production model that
    answers one class for most shifted images has a high recall there (and a poor
    precision), so a candidate that learned the shift would look like a regression."""

    def __post_init__(self) -> None:
        if self.metric not in GATE_METRICS:
            raise ConfigError(
                f"unknown gate metric {self.metric!r}", hint=f"use one of {', '.join(GATE_METRICS)}"
            )
        for name in (self.per_class_metric, self.new_data_per_class_metric):
            if name not in PER_CLASS_METRICS:
                raise ConfigError(
                    f"unknown per-class gate metric {name!r}",
                    hint=f"use one of {', '.join(PER_CLASS_METRICS)}",
                )
        if self.max_class_regression < 0:
            raise ConfigError(f"max_class_regression must be >= 0, got {self.max_class_regression}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GatePolicy:
        """Build from a dict; unknown keys are rejected with the list of known ones."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(
                f"unknown gate settings {sorted(unknown)}",
                hint=f"known: {', '.join(sorted(known))}",
            )
        return cls(**values)


@dataclass
class GateDecision:
    """The outcome: ``passed`` plus the reasons, and the numbers behind them."""

    passed: bool
    reasons: list[str]
    metric: str
    candidate: float
    production: float | None = None
    production_version: int | None = None
    class_deltas: dict[str, float] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    evaluations: dict[str, Any] = field(default_factory=dict)
    """With new data: ``{"base_val": ..., "new_holdout": ...}``, each with ``passed``,
    ``candidate``, ``production``, ``class_deltas`` and ``reasons``."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        """A short Markdown report (the Kubeflow UI renders it)."""
        verdict = "PASSED" if self.passed else "FAILED"
        against = (
            f"production v{self.production_version}"
            if self.production_version is not None
            else "no production model yet"
        )
        lines = [f"## Gate {verdict}", "", f"Candidate vs {against} on `{self.metric}`.", ""]
        if self.evaluations:
            lines += ["| data | candidate | production | worst class change | verdict |",
                      "|---|---|---|---|---|"]  # fmt: skip
            for name, ev in self.evaluations.items():
                deltas = ev.get("class_deltas") or {}
                worst = min(deltas.items(), key=lambda kv: kv[1]) if deltas else None
                prod = ev.get("production")
                lines.append(
                    f"| {name} | {ev['candidate']:.4f} | "
                    f"{'-' if prod is None else f'{prod:.4f}'} | "
                    f"{f'{worst[0]} {worst[1]:+.4f}' if worst else '-'} | "
                    f"{'pass' if ev['passed'] else 'FAIL'} |"
                )
            lines.append("")
        lines += [f"- {r}" for r in self.reasons]
        return "\n".join(lines) + "\n"


def _value(metrics: dict[str, Any], name: str, who: str) -> float:
    if name not in metrics or metrics[name] is None:
        raise ConfigError(
            f"the {who} metrics have no {name!r}",
            hint=f"available: {', '.join(sorted(k for k in metrics if k in GATE_METRICS))}",
        )
    return float(metrics[name])


def _better(policy: GatePolicy, a: float, b: float) -> float:
    """How much ``a`` beats ``b`` on the policy's metric (positive = better)."""
    return b - a if policy.metric in LOWER_IS_BETTER else a - b


def _class_deltas(
    candidate: dict[str, Any], production: dict[str, Any], key: str
) -> dict[str, float]:
    """Per-class change (candidate - production) over the classes both models know and score
    (detection AP is ``None`` for a class without boxes in the data: not compared)."""
    cand = candidate.get("per_class") or {}
    prod = production.get("per_class") or {}
    return {
        name: round(float(cand[name][key]) - float(prod[name][key]), 6)
        for name in sorted(set(cand) & set(prod))
        if cand[name].get(key) is not None and prod[name].get(key) is not None
    }


def _beyond_noise(
    name: str, candidate: dict[str, Any], production: dict[str, Any], policy: GatePolicy
) -> bool:
    """Whether class ``name``'s drop is beyond sampling noise (see ``min_regression_z``)."""
    cand = (candidate.get("per_class") or {}).get(name, {})
    n = cand.get("support")
    if policy.min_regression_z <= 0 or not n:
        return True
    a = float((production.get("per_class") or {})[name][policy.per_class_metric])
    b = float(cand[policy.per_class_metric])
    se = math.sqrt(max(a * (1 - a) + b * (1 - b), 0.0) / int(n))
    return se == 0 or (a - b) / se >= policy.min_regression_z


def decide(
    candidate: dict[str, Any],
    production: dict[str, Any] | None,
    policy: GatePolicy | None = None,
    *,
    production_version: int | None = None,
) -> GateDecision:
    """Compare ``candidate`` with ``production`` (``None`` for the first model)."""
    p = policy or GatePolicy()
    m = p.metric
    cand = _value(candidate, m, "candidate")
    reasons: list[str] = []
    passed = True
    lower = m in LOWER_IS_BETTER
    floor_ok = cand <= p.absolute_floor if lower else cand >= p.absolute_floor
    op = "<=" if lower else ">="
    if floor_ok:
        reasons.append(f"{m} {cand:.4f} clears the absolute floor ({op} {p.absolute_floor})")
    else:
        passed = False
        reasons.append(f"{m} {cand:.4f} misses the absolute floor ({op} {p.absolute_floor})")
    if production is None:
        reasons.append("no production model yet: the first model only needs to clear the floor")
        return GateDecision(passed, reasons, m, cand, policy=asdict(p))

    prod = _value(production, m, "production")
    gain = _better(p, cand, prod)
    who = f"production v{production_version}" if production_version is not None else "production"
    verdict = "meets" if gain >= p.min_improvement else "misses"
    reasons.append(
        f"{m} {cand:.4f} vs {who} {prod:.4f}: improvement {gain:+.4f} {verdict} the required "
        f"{p.min_improvement:+.4f}"
    )
    passed &= gain >= p.min_improvement

    deltas = _class_deltas(candidate, production, p.per_class_metric)
    beyond = {c: d for c, d in deltas.items() if -d > p.max_class_regression + 1e-12}
    regressed = {c: d for c, d in beyond.items() if _beyond_noise(c, candidate, production, p)}
    noise = {c: d for c, d in beyond.items() if c not in regressed}
    if noise:
        support = {c: (candidate.get("per_class") or {})[c].get("support") for c in noise}
        shown = ", ".join(f"{c!r} {d:+.4f} (n={support[c]})" for c, d in sorted(noise.items()))
        reasons.append(
            f"{len(noise)} classes fell on {p.per_class_metric} by more than "
            f"{p.max_class_regression} but within sampling noise (z < {p.min_regression_z}): "
            f"{shown}"
        )
    if regressed:
        passed = False
        worst = sorted(regressed.items(), key=lambda kv: kv[1])[:5]
        shown = ", ".join(f"{c!r} {d:+.4f}" for c, d in worst)
        reasons.append(
            f"{len(regressed)} classes regress on {p.per_class_metric} by more than "
            f"{p.max_class_regression}: {shown}"
        )
    elif deltas:
        c, d = min(deltas.items(), key=lambda kv: kv[1])
        reasons.append(
            f"no class regresses on {p.per_class_metric} by more than "
            f"{p.max_class_regression} (worst: {c!r} {d:+.4f})"
        )
    cand_classes = set(candidate.get("classes") or [])
    prod_classes = set(production.get("classes") or [])
    if cand_classes and prod_classes and cand_classes != prod_classes:
        reasons.append(
            f"class set changed: added {sorted(cand_classes - prod_classes)}, "
            f"removed {sorted(prod_classes - cand_classes)}"
        )
    return GateDecision(passed, reasons, m, cand, prod, production_version, deltas, asdict(p))


def _evaluation(decision: GateDecision) -> dict[str, Any]:
    keys = ("passed", "candidate", "production", "class_deltas", "reasons")
    return {k: getattr(decision, k) for k in keys}


def decide_with_new_data(
    candidate: dict[str, Any],
    production: dict[str, Any] | None,
    candidate_new: dict[str, Any],
    production_new: dict[str, Any] | None,
    policy: GatePolicy | None = None,
    *,
    production_version: int | None = None,
) -> GateDecision:
    """The retraining gate: on the base validation set the candidate may fall by at most
    ``max_base_drop``; on the held-out new data it must improve by ``min_improvement``; on
    both no class may regress by more than ``max_class_regression`` (``per_class_metric`` on
    the base set, ``new_data_per_class_metric`` on the new data); both clear the floor.

    >>> d = decide_with_new_data(base_c, base_p, new_c, new_p, GatePolicy())  # doctest: +SKIP
    >>> d.evaluations["new_holdout"]["passed"], d.reasons
    """
    p = policy or GatePolicy()
    base = decide(
        candidate,
        production,
        replace(p, min_improvement=-p.max_base_drop),
        production_version=production_version,
    )
    new = decide(
        candidate_new,
        production_new,
        replace(p, per_class_metric=p.new_data_per_class_metric),
        production_version=production_version,
    )
    reasons = [f"base val: {r}" for r in base.reasons]
    reasons += [f"new data (held out): {r}" for r in new.reasons]
    return GateDecision(
        passed=base.passed and new.passed,
        reasons=reasons,
        metric=base.metric,
        candidate=base.candidate,
        production=base.production,
        production_version=production_version,
        class_deltas=base.class_deltas,
        policy=asdict(p),
        evaluations={"base_val": _evaluation(base), "new_holdout": _evaluation(new)},
    )
