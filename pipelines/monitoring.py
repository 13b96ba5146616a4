"""The drift-monitoring pipeline: one ``monitor`` task on the last window of the prediction log.

Compiled to ``pipelines/monitoring.yaml`` (``python -m imgrec.pipelines.monitoring``) and run on a
schedule as a Kubeflow recurring run (``imgrec monitor schedule``, or "Create recurring run" in
the Kubeflow UI), so every window's Evidently page (HTML) and verdict (Metrics) show in the
Kubeflow UI next to the training runs. It runs unchanged with kfp's local runner::

    from imgrec.pipelines.monitoring import build_monitoring_pipeline
    kfp.compiler.Compiler().compile(build_monitoring_pipeline(), "pipelines/monitoring.yaml")
"""

# No `from __future__ import annotations`: KFP reads the pipeline's annotations as types.
from typing import Any

PIPELINE_NAME = "imgrec-drift-monitor"


def build_monitoring_pipeline(image: str | None = None) -> Any:
    """The pipeline (one task; parameters are the run's)."""
    from kfp import dsl

    from imgrec.components import build_components

    ops = build_components(image)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Drift report of the last window of the imgrec prediction log against the "
        "production model's reference profile (Evidently HTML + verdict metrics).",
    )
    def drift_monitor(
        log_uri: str = "s3://imgrec/prediction-log",
        reference: str = "s3://imgrec/model-store@production",
        last: int = 0,
        since: str = "1h",
        alpha: float = 0.01,
        out_uri: str = "s3://imgrec/drift-reports",
    ) -> dict:
        task = ops["monitor"](
            log_uri=log_uri, reference=reference, last=last, since=since, alpha=alpha,
            out_uri=out_uri,
        )  # fmt: skip
        task.set_caching_options(False)  # "since 1h" is the same input every hour: never reuse
        return task.outputs["Output"]

    return drift_monitor


def compile_monitoring(output: str = "pipelines/monitoring.yaml", image: str | None = None) -> str:
    """Compile to KFP IR YAML at ``output`` (with the default component image)."""
    from kfp import compiler

    from imgrec.components import DEFAULT_IMAGE

    compiler.Compiler().compile(build_monitoring_pipeline(image or DEFAULT_IMAGE), output)
    return output


if __name__ == "__main__":
    print(f"wrote {compile_monitoring()}")
