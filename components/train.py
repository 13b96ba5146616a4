"""train: imgrec training (CPU or GPU) on the preprocessed data."""

from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output


def train(
    data: Input[Dataset],
    device: str,
    threads: int,
    model: Output[Model],
    report: Output[HTML],
    metrics: Output[Metrics],
):
    """Train with the recipe fixed by preprocess; ``model`` is the best model directory."""
    import os
    import shutil
    import tempfile

    from imgrec.mlops.steps import scalar_metrics, train_step

    run_dir = tempfile.mkdtemp(prefix="imgrec-train-")
    result = train_step(data.path, model.path, run_dir, device=device, threads=threads)
    if os.path.exists(os.path.join(run_dir, "report.html")):
        shutil.copyfile(os.path.join(run_dir, "report.html"), report.path)
    for name, value in scalar_metrics(result).items():
        metrics.log_metric(f"val_{name}", value)
    model.metadata["framework"] = "pytorch"
    model.metadata["format"] = "imgrec.model/v1"
    model.metadata["classes"] = list(result.get("classes", []))
    shutil.rmtree(run_dir, ignore_errors=True)
