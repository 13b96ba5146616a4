"""gate: candidate vs the production model on the same evaluation data."""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Markdown, Output


def gate(
    candidate: dict,
    manifest: Input[Dataset],
    store_uri: str,
    split: str,
    metric: str,
    min_improvement: float,
    max_class_regression: float,
    absolute_floor: float,
    decision: Output[Markdown],
) -> NamedTuple(  # type: ignore[valid-type]
    "GateOutputs", [("passed", bool), ("reasons", list), ("details", dict)]
):
    """Decide; ``passed`` drives the ``register`` branch, ``reasons`` say why."""
    import os
    import shutil
    from collections import namedtuple

    from imgrec.mlops.steps import gate_step, kfp_safe

    policy = {
        "metric": metric,
        "min_improvement": min_improvement,
        "max_class_regression": max_class_regression,
        "absolute_floor": absolute_floor,
    }
    out = decision.path + ".files"
    result = gate_step(candidate, manifest.path, store_uri, out, policy, split=split)
    shutil.copyfile(os.path.join(out, "gate.md"), decision.path)
    decision.metadata["passed"] = bool(result["passed"])
    GateOutputs = namedtuple("GateOutputs", ["passed", "reasons", "details"])
    return GateOutputs(bool(result["passed"]), list(result["reasons"]), kfp_safe(result))
