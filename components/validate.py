"""validate: the Great Expectations suite over the manifest; fails the run on critical checks."""

from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output


def validate(
    manifest: Input[Dataset],
    labels: str,
    min_images: int,
    max_unreadable_fraction: float,
    min_images_per_class: int,
    max_class_imbalance: float,
    min_val_fraction: float,
    max_val_fraction: float,
    min_image_size: int,
    max_image_size: int,
    report: Output[HTML],
    summary: Output[Markdown],
    metrics: Output[Metrics],
) -> bool:
    """Validate the manifest; the HTML report and summary are written even when it fails."""
    import os
    import shutil

    from imgrec.mlops.steps import validate_step

    thresholds = {
        "labels": labels,
        "min_images": min_images,
        "max_unreadable_fraction": max_unreadable_fraction,
        "min_images_per_class": min_images_per_class,
        "max_class_imbalance": max_class_imbalance,
        "min_val_fraction": min_val_fraction,
        "max_val_fraction": max_val_fraction,
        "min_width": min_image_size,
        "min_height": min_image_size,
        "max_width": max_image_size,
        "max_height": max_image_size,
    }
    out = report.path + ".files"
    try:
        result = validate_step(manifest.path, out, thresholds)
    finally:
        for name, target in (("validation.html", report.path), ("summary.md", summary.path)):
            if os.path.exists(os.path.join(out, name)):
                shutil.copyfile(os.path.join(out, name), target)
    checks = result["checks"]
    metrics.log_metric("checks_passed", sum(bool(c["success"]) for c in checks))
    metrics.log_metric("checks_failed", sum(not c["success"] for c in checks))
    metrics.log_metric("warnings", len(result["warnings"]))
    return bool(result["success"])
