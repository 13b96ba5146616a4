"""monitor: a drift report on the last window of the prediction log, as Kubeflow UI artifacts."""

from kfp.dsl import HTML, Metrics, Output


def monitor(
    log_uri: str,
    reference: str,
    last: int,
    since: str,
    alpha: float,
    out_uri: str,
    report: Output[HTML],
    metrics: Output[Metrics],
) -> dict:
    """Compare the window of ``log_uri`` (the newest ``last`` records, or those ``since`` a time
    or span such as ``1h``) with ``reference`` (``STORE@production``): Evidently's page as the
    run's HTML, the verdict and p-values as its Metrics; with ``out_uri`` the report files
    (``summary.json`` for dashboards) also go to ``out_uri/<window end>/``. Returns the summary.
    """
    import os
    import shutil

    from imgrec.mlops.steps import kfp_safe
    from imgrec.monitoring.report import kubeflow_metrics, monitor_step

    files = report.path + ".files"
    summary = monitor_step(
        log_uri, reference, files, last=last, since=since, alpha=alpha, copy_to=out_uri
    )
    shutil.copyfile(os.path.join(files, "report.html"), report.path)
    for name, value in kubeflow_metrics(summary).items():
        metrics.log_metric(name, value)
    return kfp_safe(summary)
