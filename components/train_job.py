"""train_on_cluster: the train step as a Training Operator PyTorchJob (train_mode=pytorchjob)
or a Kubeflow Trainer v2 TrainJob (train_mode=trainjob)."""

from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output


def train_on_cluster(
    data: Input[Dataset],
    device: str,
    threads: int,
    job_settings: str,
    model: Output[Model],
    report: Output[HTML],
    metrics: Output[Metrics],
):
    """Create a PyTorchJob/TrainJob running the train step on ``workers`` pods (DDP), wait for it
    (its state goes to this step's log) and pass its model on. ``job_settings`` is the JSON
    of :class:`imgrec.mlops.train_job.JobSettings`, fixed when the pipeline is compiled."""
    import json

    from imgrec.mlops.steps import scalar_metrics
    from imgrec.mlops.train_job import JobSettings, run_training_job

    settings = JobSettings(**{**json.loads(job_settings), "device": device, "threads": threads})
    result = run_training_job(data.path, model.path, settings, report_path=report.path)
    for name, value in scalar_metrics(result).items():
        metrics.log_metric(f"val_{name}", value)
    model.metadata["framework"] = "pytorch"
    model.metadata["format"] = "imgrec.model/v1"
    model.metadata["classes"] = list(result.get("classes", []))
