"""ingest: a folder, ``s3://`` prefix or CSV manifest -> a versioned dataset manifest."""

from kfp.dsl import Dataset, Markdown, Output


def ingest(
    data_uri: str,
    val_fraction: float,
    seed: int,
    manifest: Output[Dataset],
    summary: Output[Markdown],
) -> str:
    """List, hash and inspect every image; returns the dataset fingerprint."""
    from imgrec.mlops.steps import ingest_markdown, ingest_step

    meta = ingest_step(data_uri, manifest.path, val_fraction=val_fraction, seed=seed)
    for key in ("fingerprint", "version", "source", "n_images", "n_unreadable", "classes"):
        manifest.metadata[key] = meta[key]
    with open(summary.path, "w", encoding="utf-8") as fh:
        fh.write(ingest_markdown(meta))
    return str(meta["fingerprint"])
