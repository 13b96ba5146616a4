"""register: store the model as a new version and move ``production`` (only on a pass)."""

from kfp.dsl import Dataset, Input, Markdown, Model, Output


def register(
    model: Input[Model],
    manifest: Input[Dataset],
    store_uri: str,
    metrics: dict,
    gate_details: dict,
    summary: Output[Markdown],
) -> int:
    """Register ``model`` in the store at ``store_uri``; returns the new version number."""
    from imgrec.mlops.steps import register_metadata, register_step
    from imgrec.monitoring.reference import pipeline_reference

    metadata = register_metadata(metrics, gate_details, dict(manifest.metadata))
    # the drift monitor's reference: held-out images through the server's path (docs/monitoring.md)
    attachments, note = pipeline_reference(model.path, manifest.path)
    version = register_step(model.path, store_uri, metadata, attachments)
    with open(summary.path, "w", encoding="utf-8") as fh:
        fh.write(f"## Registered version {version}\n\nStore `{store_uri}`; now in production.")
        fh.write(f" {note}\n")
    return version


def not_registered(gate_reasons: list, summary: Output[Markdown]) -> int:
    """The gate said no: record why; returns 0 (no version)."""
    lines = ["## Not registered", "", "The gate refused the candidate:", ""]
    lines += [f"- {r}" for r in gate_reasons]
    with open(summary.path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return 0
