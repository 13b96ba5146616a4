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

    metadata = register_metadata(metrics, gate_details, dict(manifest.metadata))
    version = register_step(model.path, store_uri, metadata)
    with open(summary.path, "w", encoding="utf-8") as fh:
        fh.write(f"## Registered version {version}\n\nStore `{store_uri}`; now in production.\n")
    return version


def not_registered(gate_reasons: list, summary: Output[Markdown]) -> int:
    """The gate said no: record why; returns 0 (no version)."""
    lines = ["## Not registered", "", "The gate refused the candidate:", ""]
    lines += [f"- {r}" for r in gate_reasons]
    with open(summary.path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return 0
