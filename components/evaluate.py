"""evaluate: metrics (accuracy... or mAP), confusion matrix and the HTML report."""

from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output


def evaluate(
    model: Input[Model],
    manifest: Input[Dataset],
    split: str,
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    report: Output[HTML],
) -> dict:
    """Evaluate on the ingested images of ``split``; returns the ``imgrec evaluate`` dict."""
    import os
    import shutil

    from imgrec.mlops.steps import confusion_labels, evaluate_step, kfp_safe, scalar_metrics

    out = report.path + ".files"
    result = evaluate_step(model.path, manifest.path, out, split=split)
    for name, value in scalar_metrics(result).items():
        metrics.log_metric(name, value)
    confusion.log_confusion_matrix(
        confusion_labels(result),
        [[int(v) for v in row] for row in result["confusion_matrix"]],
    )
    shutil.copyfile(os.path.join(out, "report.html"), report.path)
    return kfp_safe(result)
