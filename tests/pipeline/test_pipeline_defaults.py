"""The pipeline's parameter defaults are the defaults of the dataclasses they feed: a default
changed in one place and not the other fails here."""

from __future__ import annotations

from dataclasses import fields

from imgrec.mlops.gate import GatePolicy
from imgrec.mlops.local_run import pipeline_parameters
from imgrec.mlops.validate import ValidationThresholds

# dataclass field -> the pipeline parameter that sets it, where the names differ
VALIDATION_PARAMS = {
    "min_width": "min_image_size",
    "min_height": "min_image_size",
    "max_width": "max_image_size",
    "max_height": "max_image_size",
}
# fixed by the pipeline or the task's spec, not pipeline parameters (a new field must be one
# or the other: this list is the decision, written down)
NOT_PARAMETERS = {"warn_only", "per_class_metric", "new_data_per_class_metric"}


def _as_param(value: object) -> object:
    return ",".join(value) if isinstance(value, tuple) else value  # tuples travel as "a,b"


def test_validation_defaults_are_the_thresholds_defaults() -> None:
    params = pipeline_parameters()
    checked = 0
    for f in fields(ValidationThresholds):
        if f.name in NOT_PARAMETERS:
            continue
        name = VALIDATION_PARAMS.get(f.name, f.name)
        assert params[name] == _as_param(f.default), f.name
        checked += 1
    assert checked == len(fields(ValidationThresholds)) - 1  # all but warn_only


def test_gate_defaults_are_the_policy_defaults() -> None:
    params = pipeline_parameters()
    policy = GatePolicy()
    for f in fields(GatePolicy):
        if f.name in NOT_PARAMETERS:
            continue
        if f.name == "metric":  # "auto": the task's gate_metric, classification's is the default
            from imgrec.tasks import get_task

            assert params["gate_metric"] == "auto"
            assert get_task("classify").gate_metric == policy.metric
            continue
        assert params[f"gate_{f.name}"] == getattr(policy, f.name), f.name


def test_new_data_share_default_is_the_libraries() -> None:
    import inspect

    from imgrec.mlops.new_data import NEW_DATA_SHARE, add_new_data
    from imgrec.mlops.steps import ingest_step

    assert pipeline_parameters()["new_data_share"] == NEW_DATA_SHARE
    assert inspect.signature(ingest_step).parameters["new_data_share"].default == NEW_DATA_SHARE
    assert inspect.signature(add_new_data).parameters["share"].default == NEW_DATA_SHARE
