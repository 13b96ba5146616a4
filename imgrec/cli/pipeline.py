"""`imgrec pipeline compile|run|submit|params`: the Kubeflow training pipeline.

``run --local`` runs the pipeline here with kfp's local runner; ``compile`` writes the IR YAML
for a cluster; ``submit`` sends it to a Kubeflow Pipelines endpoint.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

import typer

from imgrec.cli.app import pipeline_app
from imgrec.errors import ConfigError


def parse_params(items: list[str] | None) -> dict[str, str]:
    """``["epochs=3", "gate_metric=f1_macro"]`` -> ``{"epochs": "3", ...}`` (strings: the
    pipeline's parameter types convert them)."""
    from imgrec.config import parse_key_values

    return parse_key_values(items or [], flag="--param", example="epochs=3", typed=False)


def _cluster(cpu: str, memory: str, gpus: int, accelerator: str, node_selector: list[str],
             tolerations: list[str], image: str | None, **job: Any) -> Any:  # fmt: skip
    from imgrec.pipelines.training import ClusterSettings, Toleration

    pairs = []
    for item in node_selector or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"bad --node-selector {item!r}", hint="use label=value")
        pairs.append((key, value))
    return ClusterSettings(
        image=image,
        cpu=cpu,
        memory=memory,
        accelerator=accelerator,
        gpus=gpus,
        node_selector=tuple(pairs),
        tolerations=tuple(Toleration.parse(t) for t in tolerations or []),
        **job,
    )


@pipeline_app.command("compile")
def compile_cmd(
    output: str = typer.Option("pipelines/training.yaml", "--output", "-o", help="YAML to write."),
    image: str = typer.Option(None, "--image", help="Component image (default: configured)."),
    cpu: str = typer.Option("4", "--cpu", help="CPU request/limit of the train task."),
    memory: str = typer.Option("16G", "--memory", help="Memory request/limit of the train task."),
    gpus: int = typer.Option(0, "--gpus", help="GPUs for the train task (0: CPU only)."),
    accelerator: str = typer.Option("nvidia.com/gpu", "--accelerator", help="GPU resource."),
    node_selector: list[str] = typer.Option(None, "--node-selector", help="label=value (repeat)."),
    toleration: list[str] = typer.Option(None, "--toleration", help="key=value:Effect (repeat)."),
    train_mode: str = typer.Option(
        "pod",
        "--train-mode",
        help="pod; pytorchjob: a Training Operator PyTorchJob; trainjob: a Trainer v2 TrainJob.",
    ),
    workers: int = typer.Option(2, "--workers", min=1, help="PyTorchJob pods (--gpus each)."),
    job_staging: str = typer.Option(
        "", "--job-staging", help="s3:// prefix the PyTorchJob reads data from, writes to."
    ),
    job_namespace: str = typer.Option("kubeflow", "--job-namespace", help="PyTorchJob namespace."),
    job_timeout: int = typer.Option(6 * 3600, "--job-timeout", help="Seconds to wait for it."),
    trainjob_runtime: str = typer.Option(
        "torch-distributed", "--trainjob-runtime", help="The TrainJob's ClusterTrainingRuntime."
    ),
) -> None:
    """Compile the training pipeline to KFP IR YAML (commit it under pipelines/)."""
    from imgrec.pipelines.training import compile_pipeline

    settings = _cluster(
        cpu, memory, gpus, accelerator if gpus else "", node_selector, toleration, image,
        train_mode=train_mode, workers=workers, job_staging_uri=job_staging,
        job_namespace=job_namespace, job_timeout_s=job_timeout, trainjob_runtime=trainjob_runtime,
    )  # fmt: skip
    typer.echo(f"wrote {compile_pipeline(output, settings, image)}")


@pipeline_app.command("params")
def params_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The pipeline's parameters and their defaults (for --param NAME=VALUE)."""
    from imgrec.mlops.local_run import pipeline_parameters

    params = pipeline_parameters()
    if as_json:
        typer.echo(json.dumps(params))
        return
    for name, default in params.items():
        typer.echo(f"{name:<28} {type(default).__name__:<6} {default!r}")


@pipeline_app.command("run")
def run_cmd(
    local: bool = typer.Option(False, "--local", help="Run here with kfp's local runner."),
    data: str = typer.Option("data/mnist5k", "--data", help="Dataset folder, s3:// or CSV."),
    store: str = typer.Option("model-store", "--store", help="Model store folder or s3://."),
    param: list[str] = typer.Option(None, "--param", help="NAME=VALUE pipeline parameter."),
    runs_dir: str = typer.Option("runs/pipeline", "--runs-dir", help="Where run folders go."),
    runner: str = typer.Option(
        "subprocess",
        "--runner",
        help="Where steps run: subprocess (this venv) or container (the component image, "
        "via podman; build it with `make image`).",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Stream component logs."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
) -> None:
    """Run the whole pipeline: ingest, validate, preprocess, train, evaluate, gate, register."""
    from imgrec.mlops import run_local

    if not local:
        raise ConfigError(
            "only local runs are started from here",
            hint="use `imgrec pipeline run --local`, or `imgrec pipeline submit --host URL`",
        )
    if not as_json:
        typer.echo(
            f"running the training pipeline on {data} (store {store}, {runner} runner) ...",
            err=True,
        )
    summary = run_local(
        data, store, parse_params(param), runs_dir=runs_dir, echo=verbose, runner=runner
    )
    if as_json:
        typer.echo(json.dumps(summary, default=str))
    else:
        print_summary(summary)
    if summary["status"] != "succeeded":
        raise typer.Exit(1)


def print_summary(summary: dict[str, Any]) -> None:
    """The run summary for people: status, metrics, gate decision with reasons, reports."""
    ok = summary["status"] == "succeeded"
    typer.echo(f"pipeline {summary['status'].upper()} in {summary['seconds']} s")
    if not ok:
        typer.echo(f"failed at step: {summary.get('failed_step') or '?'}")
        typer.echo(f"reason: {summary.get('error')}")
    if summary.get("metrics"):
        from imgrec.tasks import get_task

        shown = get_task(summary.get("params", {}).get("task") or "classify").headline_metrics
        typer.echo(
            "metrics: "
            + "  ".join(
                f"{k} {summary['metrics'][k]:.4f}" for k in shown if k in summary["metrics"]
            )
        )
    if ok:
        gate = summary["gate"]
        typer.echo(f"gate: {'PASSED' if gate.get('passed') else 'FAILED'}")
        for reason in gate.get("reasons", []):
            typer.echo(f"  - {reason}")
        version = summary.get("registered_version")
        typer.echo(f"registered: version {version}" if version else "registered: nothing")
    typer.echo(f"production: version {summary.get('production_version')}")
    for name, path in summary.get("reports", {}).items():
        typer.echo(f"report {name}: {path}")
    typer.echo(f"log: {summary['log']}")


def _package(package: str | None, image: str | None, tmp: str) -> str:
    from imgrec.pipelines.training import compile_pipeline

    if package:
        if image:
            raise ConfigError("--image and --package exclude each other",
                              hint="the image is set when compiling")  # fmt: skip
        return package
    return compile_pipeline(f"{tmp}/training.yaml", image=image)


@pipeline_app.command("upload")
def upload_cmd(
    host: str = typer.Option(..., "--host", help="Kubeflow Pipelines API endpoint URL."),
    name: str = typer.Option("imgrec-training", "--name", help="Pipeline name."),
    version: str = typer.Option(..., "--version", help="Version name, e.g. the commit SHA."),
    image: str = typer.Option(None, "--image", help="Component image to compile with."),
    package: str = typer.Option(None, "--package", help="Compiled YAML (default: compile now)."),
    namespace: str = typer.Option(None, "--namespace", help="Kubeflow namespace (multi-user)."),
) -> None:
    """Upload the pipeline as a new version of NAME (created on first use); cd.yml runs this."""
    from imgrec.pipelines.submit import upload

    with tempfile.TemporaryDirectory() as tmp:
        ids = upload(host, _package(package, image, tmp), name=name, version=version,
                     namespace=namespace)  # fmt: skip
    typer.echo(f"uploaded {name} version {version} to {host}: {json.dumps(ids)}")


@pipeline_app.command("submit")
def submit_cmd(
    host: str = typer.Option(..., "--host", help="Kubeflow Pipelines API endpoint URL."),
    experiment: str = typer.Option("imgrec", "--experiment", help="Experiment name."),
    run_name: str = typer.Option(None, "--run-name", help="Run name (default: generated)."),
    name: str = typer.Option("imgrec-training", "--name", help="Pipeline name."),
    version: str = typer.Option(None, "--version", help="Version name (default: generated)."),
    image: str = typer.Option(None, "--image", help="Component image to compile with."),
    package: str = typer.Option(None, "--package", help="Compiled YAML (default: compile now)."),
    namespace: str = typer.Option(None, "--namespace", help="Kubeflow namespace (multi-user)."),
    param: list[str] = typer.Option(None, "--param", help="NAME=VALUE pipeline parameter."),
    wait: float = typer.Option(0, "--wait", help="Wait up to SECONDS for the run to end."),
    as_json: bool = typer.Option(False, "--json", help="Print the ids and state as JSON."),
    runs_dir: str = typer.Option(
        "runs/pipeline",
        "--runs-dir",
        help="Where the run is recorded (host, run id) beside local runs; the dashboard's Runs "
        "page links to it. Empty: not recorded.",
    ),
) -> None:
    """Upload the pipeline as a new version, start a run of it, and report the run's state."""
    import time

    from imgrec.mlops.local_run import coerce_params
    from imgrec.pipelines.submit import record_submission, submit

    arguments = coerce_params(parse_params(param))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    run_name = run_name or f"imgrec-{stamp}"
    with tempfile.TemporaryDirectory() as tmp:
        result = submit(host, _package(package, image, tmp), name=name,
                        version=version or stamp, experiment=experiment,
                        run_name=run_name, arguments=arguments,
                        namespace=namespace, wait_s=wait)  # fmt: skip
    if runs_dir:
        folder = record_submission(runs_dir, host, result, experiment=experiment,
                                   run_name=run_name, arguments=arguments)  # fmt: skip
        result["record"] = str(folder)
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(f"submitted run {result['run_id']} to {host} (experiment {experiment}, "
                   f"state {result['state'] or 'unknown'})")  # fmt: skip
        if runs_dir:
            typer.echo(f"recorded in {result['record']} (imgrec dashboard --runs {runs_dir})")
    if wait and result["state"] != "SUCCEEDED":
        raise typer.Exit(1)
