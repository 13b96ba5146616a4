"""gate: candidate vs the production model on the same evaluation data."""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Markdown, Model, Output


def gate(
    candidate: dict,
    model: Input[Model],
    manifest: Input[Dataset],
    store_uri: str,
    split: str,
    metric: str,
    min_improvement: float,
    max_class_regression: float,
    absolute_floor: float,
    max_base_drop: float,
    min_regression_z: float,
    decision: Output[Markdown],
) -> NamedTuple(  # type: ignore[valid-type]
    "GateOutputs", [("passed", bool), ("reasons", list), ("details", dict)]
):
    """Decide; ``passed`` drives the ``register`` branch, ``reasons`` say why. With new data
    in the manifest, ``model`` is also scored on its held-out slice (both evaluations are in
    the reasons and the ``decision`` Markdown)."""
    import os
    import shutil
    from collections import namedtuple

    from imgrec.mlops.steps import gate_step, kfp_safe

    policy = {
        "metric": metric,
        "min_improvement": min_improvement,
        "max_class_regression": max_class_regression,
        "absolute_floor": absolute_floor,
        "max_base_drop": max_base_drop,
        "min_regression_z": min_regression_z,
    }
    out = decision.path + ".files"
    result = gate_step(
        candidate, manifest.path, store_uri, out, policy, split=split, model_dir=model.path
    )
    shutil.copyfile(os.path.join(out, "gate.md"), decision.path)
    decision.metadata["passed"] = bool(result["passed"])
    GateOutputs = namedtuple("GateOutputs", ["passed", "reasons", "details"])
    return GateOutputs(bool(result["passed"]), list(result["reasons"]), kfp_safe(result))
