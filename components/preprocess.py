"""preprocess: resolve the training recipe and cache the images at the training geometry."""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Markdown, Output


def preprocess(
    manifest: Input[Dataset],
    task: str,
    architecture: str,
    img_size: int,
    epochs: int,
    device: str,
    overrides: str,
    init_from: str,
    store_uri: str,
    data: Output[Dataset],
    summary: Output[Markdown],
) -> NamedTuple("PreprocessOutputs", [("architecture", str), ("img_size", int)]):  # type: ignore[valid-type]
    """Writes ``data.csv`` + shrunken images + ``train_config.json``; returns the geometry."""
    from collections import namedtuple

    from imgrec.mlops.steps import preprocess_markdown, preprocess_step

    result = preprocess_step(
        manifest.path,
        data.path,
        task=task,
        model=architecture,
        img_size=img_size,
        epochs=epochs,
        device=device,
        overrides=overrides,
        init_from=init_from,
        store_uri=store_uri,
    )
    config = result["config"]
    data.metadata["architecture"] = config["model"]
    data.metadata["img_size"] = config["img_size"]
    data.metadata["resized"] = result["resized"]
    data.metadata["task"] = task
    with open(summary.path, "w", encoding="utf-8") as fh:
        fh.write(preprocess_markdown(result))
    PreprocessOutputs = namedtuple("PreprocessOutputs", ["architecture", "img_size"])
    return PreprocessOutputs(str(config["model"]), int(config["img_size"]))
