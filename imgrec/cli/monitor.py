"""`imgrec monitor reference|report`: drift monitoring of the prediction log (monitoring/).

Exit codes of `report`: 0 no drift (or no verdict: window too small), 3 drift when
`--fail-on-drift`, 2 bad input (one line `error[code]: ...`).
"""

from __future__ import annotations

import json
import sys
import tempfile

import typer

from imgrec.cli.app import monitor_app

EXIT_DRIFT = 3


@monitor_app.command("reference")
def reference(
    model: str = typer.Argument(..., help="Model directory, STORE@V (STORE@production) or name."),
    data: str = typer.Argument(
        ...,
        help="Dataset with held-out images (folder, s3://, CSV; a detector's COCO/YOLO/VOC).",
    ),
    out: str = typer.Option(
        None,
        "--out",
        help="Where to write the reference (.json). Default: beside the store version "
        "(STORE/versions/N/reference.json) or MODEL/reference.json.",
    ),
    split: str = typer.Option(
        "val",
        "--split",
        help="The held-out split to profile (`all`: a folder kept out of training).",
    ),
    max_images: int = typer.Option(5000, "--max-images", help="Sample at most this many."),
    as_json: bool = typer.Option(False, "--json", help="Print where it went and its size."),
) -> None:
    """Profile held-out images through the server's own path: what reports compare against
    (classifiers and detectors)."""
    from imgrec.monitoring.reference import (
        REFERENCE_FILE,
        build_reference,
        save_reference,
        store_version,
    )

    target = store_version(model)
    if out is None and target is None and "@" not in model:
        from imgrec import storage

        if not storage.exists(storage.join(model, "model.json")):
            raise typer.BadParameter(
                "--out is needed for a pretrained model name", param_hint="--out"
            )
        out = storage.join(model, REFERENCE_FILE)
    doc = build_reference(model, data, split=split, max_images=max_images)
    if out is None and target is not None:
        store, version = target
        from imgrec.monitoring.reference import reference_bytes

        where = store.attach(version.version, REFERENCE_FILE, reference_bytes(doc))
    else:
        where = save_reference(doc, out)
    info = {
        "reference": where,
        "images": doc["data"]["images"],
        "model_version": doc["model"]["version"],
    }
    typer.echo(json.dumps(info) if as_json else f"reference of {info['images']} images: {where}")


@monitor_app.command("report")
def report(
    log: str = typer.Option(
        ..., "--log", help="Prediction log: folder, .jsonl file or s3:// prefix."
    ),
    reference: str = typer.Option(
        ...,
        "--reference",
        help="STORE@production, STORE@V, a reference file, or a model directory.",
    ),
    out: str = typer.Option(
        ..., "--out", help="Folder for report.html, snapshot.json, summary.json."
    ),
    last: int = typer.Option(None, "--last", help="The newest N records (default 1000)."),
    since: str = typer.Option(None, "--since", help="From this time (ISO-8601, or 30m/6h/7d ago)."),
    until: str = typer.Option(None, "--until", help="Up to this time (exclusive)."),
    model_version: str = typer.Option(
        None,
        "--model-version",
        help="Compare records of this model version (must be the reference's).",
    ),
    alpha: float = typer.Option(0.01, "--alpha", help="False-alarm rate of the verdict."),
    as_json: bool = typer.Option(False, "--json", help="Print summary.json."),
    fail_on_drift: bool = typer.Option(False, "--fail-on-drift", help="Exit 3 on drift."),
    on_drift: str = typer.Option(
        None,
        "--on-drift",
        help="On drift start a retraining: github (repository_dispatch imgrec-drift), kfp "
        "(submit the pipeline) or local (run it here); once per model version (docs/loop.md).",
    ),
    store: str = typer.Option(
        None, "--store", help="Model store holding the trigger record (default: --reference's)."
    ),
    github_repo: str = typer.Option(
        None, "--github-repo", help="owner/name for --on-drift github (default GITHUB_REPOSITORY)."
    ),
    kfp_host: str = typer.Option(None, "--kfp-host", help="KFP API for --on-drift kfp (KFP_HOST)."),
    retrain_data: str = typer.Option(
        None, "--retrain-data", help="Base dataset of the retraining (kfp, local)."
    ),
    retrain_param: list[str] = typer.Option(
        None, "--retrain-param", help="NAME=VALUE pipeline parameter of the retraining (repeat)."
    ),
    force: bool = typer.Option(False, "--force", help="Trigger even if this version already was."),
) -> None:
    """Compare a window of the prediction log with the reference: one calibrated verdict."""
    from imgrec.monitoring.logs import WindowSpec, parse_time
    from imgrec.monitoring.report import DEFAULT_LAST, monitor_report

    if last is None and since is None and until is None:
        last = DEFAULT_LAST
    spec = WindowSpec(
        last=last,
        since=parse_time(since) if since else None,
        until=parse_time(until) if until else None,
    )

    def progress(lines: int) -> None:
        print(f"read {lines:,} lines ...", file=sys.stderr)

    summary = monitor_report(
        log, reference, spec, out, alpha=alpha, model_version=model_version, on_progress=progress
    )
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        drifted = [s["name"] for s in summary["signals"] if s["drifted"]]
        win = summary["window"]
        typer.echo(
            f"{summary['verdict']}: {win['n']} records of model version "
            f"{summary['model_version']} ({win['start']} .. {win['end']})"
            + (f"; drifted: {', '.join(drifted)}" if drifted else "")
        )
        typer.echo(f"report: {out}/report.html")
    if on_drift:
        from imgrec.cli.pipeline import parse_params
        from imgrec.monitoring.trigger import TriggerSettings, fire, store_of_reference

        settings = TriggerSettings(
            store=store or store_of_reference(reference),
            report_uri=out,
            data=retrain_data or "",
            params=dict(parse_params(retrain_param)),
            github_repo=github_repo or "",
            kfp_host=kfp_host or "",
            force=force,
        )
        fired = fire(on_drift, summary, settings)
        print(
            f"trigger ({on_drift}): {fired['status']}, key {fired['key']}"
            + (f", record {fired['record']}" if fired.get("record") else ""),
            file=sys.stderr,
        )
    if fail_on_drift and summary["drift"]:
        raise typer.Exit(EXIT_DRIFT)


SCHEDULE_PARAMS = {"log_uri": str, "reference": str, "last": int, "since": str, "alpha": float,
                   "out_uri": str}  # fmt: skip


@monitor_app.command("schedule")
def schedule(
    host: str = typer.Option(..., "--host", help="Kubeflow Pipelines API endpoint URL."),
    cron: str = typer.Option(
        "0 5 * * * *", "--cron", help="KFP cron, seconds first (default: hourly at :05)."
    ),
    experiment: str = typer.Option("imgrec-monitoring", "--experiment", help="Experiment name."),
    namespace: str = typer.Option(None, "--namespace", help="Kubeflow namespace (multi-user)."),
    param: list[str] = typer.Option(
        None, "--param", help=f"NAME=VALUE, NAME one of {', '.join(SCHEDULE_PARAMS)}."
    ),
) -> None:
    """Run the drift-monitor pipeline as a Kubeflow recurring run: each window's report (HTML)
    and verdict (Metrics) in the Kubeflow UI."""
    import kfp

    from imgrec.cli.pipeline import parse_params
    from imgrec.errors import ConfigError
    from imgrec.pipelines.monitoring import PIPELINE_NAME, compile_monitoring

    params = {}
    for name, value in parse_params(param).items():
        if name not in SCHEDULE_PARAMS:
            raise ConfigError(
                f"unknown parameter {name!r}", hint=f"one of {', '.join(SCHEDULE_PARAMS)}"
            )
        params[name] = SCHEDULE_PARAMS[name](value)
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_monitoring(f"{tmp}/monitoring.yaml")
        client = kfp.Client(host=host, namespace=namespace)
        exp = client.create_experiment(experiment, namespace=namespace)
        job = client.create_recurring_run(
            experiment_id=exp.experiment_id, job_name=PIPELINE_NAME, cron_expression=cron,
            pipeline_package_path=package, params=params, max_concurrency=1, no_catchup=True,
            enable_caching=False,
        )  # fmt: skip
    typer.echo(f"recurring run {job.recurring_run_id} ({cron}) in experiment {experiment}")
