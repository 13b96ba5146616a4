"""ingest: a folder, ``s3://`` prefix, CSV manifest or detection dataset -> a versioned
dataset manifest."""

from kfp.dsl import Dataset, Markdown, Output


def ingest(
    data_uri: str,
    task: str,
    val_fraction: float,
    seed: int,
    new_data_uri: str,
    new_holdout_fraction: float,
    new_data_share: float,
    manifest: Output[Dataset],
    summary: Output[Markdown],
) -> str:
    """List, hash and inspect every image (and, for ``task=detect``, count its boxes); with
    ``new_data_uri``, add the new labelled images (part held out for the gate, the rest
    ``new_data_share`` of each training epoch); returns the dataset fingerprint."""
    from imgrec.mlops.steps import ingest_step, ingest_summary

    meta = ingest_step(
        data_uri,
        manifest.path,
        val_fraction=val_fraction,
        seed=seed,
        task=task,
        new_data_uri=new_data_uri,
        new_holdout_fraction=new_holdout_fraction,
        new_data_share=new_data_share,
    )
    keys = ("task", "fingerprint", "version", "source", "n_images", "n_unreadable", "classes")
    for key in keys:
        manifest.metadata[key] = meta[key]
    if "new_data" in meta:
        manifest.metadata["new_data"] = meta["new_data"]
    with open(summary.path, "w", encoding="utf-8") as fh:
        fh.write(ingest_summary(meta))
    return str(meta["fingerprint"])
