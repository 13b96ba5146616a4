"""Retraining triggers: what a drift verdict starts, at most once per model version.

``imgrec monitor report ... --on-drift ACTION`` calls :func:`fire` with the report's summary:

* ``github``: a ``repository_dispatch`` (``monitoring.github``) that starts
  .github/workflows/retrain.yml;
* ``kfp``: submits the training pipeline to a Kubeflow Pipelines host (``pipelines.submit``;
  a refused or unreachable host is ``error[kfp_failed]``, nothing is recorded);
* ``local``: runs the training pipeline here with kfp's local runner.

Idempotency: the key is ``<model>-v<version>`` (the production version the drifted traffic was
served by; a window without a version uses its time range). Before acting, :func:`fire` claims
``STORE/triggers/<key>.json`` in the model store (created only if absent); a second drift
verdict for the same version -- the same window reported twice, or the next window -- finds
the claim and does nothing (``status: "duplicate"``). If the action fails the claim is removed,
so nothing is marked triggered unless it was accepted; a retraining whose pipeline failed is
recorded ``failed`` and may be triggered again. ``force=True`` ignores earlier records::

    result = fire("github", summary, TriggerSettings(store="s3://models/digits",
                                                     report_uri="s3://reports/w42"))
    result["status"]        # "triggered" | "duplicate" | "no drift"
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from imgrec import storage
from imgrec.errors import ConfigError, StorageError
from imgrec.registry import Registry

RECORD_DIR = "triggers"


@dataclass
class TriggerSettings:
    """Where the record goes and what each action needs."""

    store: str  # the model store: the record lives in STORE/triggers/
    report_uri: str = ""  # the drift report (folder or URI), sent in the payload
    model: str = "imgrec"
    data: str = ""  # base dataset of the retraining (local, kfp)
    params: dict[str, Any] = field(default_factory=dict)  # pipeline parameters (local, kfp)
    github_repo: str = ""  # owner/name; default GITHUB_REPOSITORY
    kfp_host: str = ""  # default KFP_HOST
    runs_dir: str = "runs/pipeline"  # local runs, and the record of a kfp submission
    force: bool = False
    retries: int = 4
    backoff_s: float = 1.0


def idempotency_key(summary: dict[str, Any], model: str) -> str:
    """``imgrec-v3``: one retraining per model version (or per window, without a version)."""
    version = summary.get("model_version")
    if version not in (None, ""):
        return f"{model}-v{version}"
    window = summary.get("window") or {}
    span = f"{window.get('start', '')}-{window.get('end', '')}"
    return f"{model}-window-" + "".join(c if c.isalnum() else "" for c in span)


def payload(summary: dict[str, Any], settings: TriggerSettings, key: str) -> dict[str, Any]:
    """The dispatch's ``client_payload`` (7 top-level keys; GitHub allows 10)."""
    window = summary.get("window") or {}
    drifted = [s.get("name") for s in summary.get("signals", []) if s.get("drifted")]
    return {
        "model": settings.model,
        "version": str(summary.get("model_version") or ""),
        "window": {k: window.get(k) for k in ("start", "end", "n")},
        "report": settings.report_uri,
        "drifted": drifted[:20],
        "store": settings.store,
        "idempotency_key": key,
    }


def record_uri(store: str, key: str) -> str:
    return storage.join(store, RECORD_DIR, f"{key}.json")


def _claim(uri: str, record: dict[str, Any]) -> bool:
    """Create ``uri`` only if absent (local: O_EXCL; S3: a check, then one PUT)."""
    text = json.dumps(record, indent=1)
    if storage.is_s3(uri):
        if storage.exists(uri):
            return False
        storage.write_text(uri, text)
        return True
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return True


def read_record(store: str, key: str) -> dict[str, Any] | None:
    uri = record_uri(store, key)
    if not storage.exists(uri):
        return None
    try:
        return dict(json.loads(storage.read_text(uri)))
    except ValueError:
        return {"status": "unreadable"}


ACTIONS: Registry[Callable[[dict[str, Any], TriggerSettings], dict[str, Any]]] = Registry(
    "drift action", list_hint="imgrec monitor report --help"
)


@ACTIONS.register("github")
def _github(body: dict[str, Any], settings: TriggerSettings) -> dict[str, Any]:
    from imgrec.monitoring.github import DEFAULT_API_URL, check_repo, dispatch

    repo = check_repo(settings.github_repo or os.environ.get("GITHUB_REPOSITORY", ""))
    return dispatch(
        repo,
        body,
        token=os.environ.get("GITHUB_TOKEN", ""),
        api_url=os.environ.get("GITHUB_API_URL", "") or DEFAULT_API_URL,
        retries=settings.retries,
        backoff_s=settings.backoff_s,
    ) | {"repo": repo}


def retrain_params(body: dict[str, Any], settings: TriggerSettings) -> dict[str, Any]:
    """Pipeline parameters of the retraining: the settings' plus the store."""
    if not settings.data:
        raise ConfigError(
            "the retraining needs the base dataset",
            hint="pass --retrain-data DATA (and --retrain-param new_data_uri=... for new labels)",
        )
    return {**settings.params, "store_uri": settings.store, "data_uri": settings.data}


@ACTIONS.register("local")
def _local(body: dict[str, Any], settings: TriggerSettings) -> dict[str, Any]:
    from imgrec.mlops import run_local

    params = retrain_params(body, settings)
    data, store = params.pop("data_uri"), params.pop("store_uri")
    run = run_local(data, store, params, runs_dir=settings.runs_dir)
    keys = ("status", "registered_version", "production_version", "run_dir", "seconds")
    return {k: run.get(k) for k in keys} | {"gate": run.get("gate", {}).get("passed")}


@ACTIONS.register("kfp")
def _kfp(body: dict[str, Any], settings: TriggerSettings) -> dict[str, Any]:
    host = settings.kfp_host or os.environ.get("KFP_HOST", "")
    if not host:
        raise ConfigError("no Kubeflow Pipelines host", hint="pass --kfp-host URL or set KFP_HOST")
    params = retrain_params(body, settings)
    import tempfile
    import time

    from imgrec.mlops.local_run import coerce_params
    from imgrec.pipelines.submit import record_submission, submit
    from imgrec.pipelines.training import PIPELINE_NAME, compile_pipeline

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    experiment, run_name = "imgrec-retrain", f"retrain-{body['idempotency_key']}"
    arguments = coerce_params(params)
    with tempfile.TemporaryDirectory() as tmp:
        result = submit(
            host, compile_pipeline(f"{tmp}/training.yaml"), name=PIPELINE_NAME, version=stamp,
            experiment=experiment, run_name=run_name, arguments=arguments,
        )  # fmt: skip
    details = {"run_id": result["run_id"], "host": host, "state": result["state"]}
    # beside the local runs, so the dashboard's Runs page lists (and links) the retraining too;
    # the run has started either way: a folder that cannot be written does not undo it
    try:
        folder = record_submission(settings.runs_dir, host, result, experiment=experiment,
                                   run_name=run_name, arguments=arguments)  # fmt: skip
        details["record"] = str(folder)
    except OSError as exc:
        details["record_error"] = f"{type(exc).__name__}: {exc}"
    return details


def fire(action: str, summary: dict[str, Any], settings: TriggerSettings) -> dict[str, Any]:
    """Run ``action`` for a drift verdict unless this version was already handled.

    Returns ``{"status", "key", "record", ...}``; raises ``TriggerError``/``ConfigError`` when
    the action did not start (the claim is then removed)."""
    act = ACTIONS.get(action)
    key = idempotency_key(summary, settings.model)
    if not summary.get("drift"):
        return {"status": "no drift", "key": key}
    uri = record_uri(settings.store, key)
    body = payload(summary, settings, key)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = {"key": key, "action": action, "status": "claimed", "time": now, "payload": body}
    earlier = read_record(settings.store, key)
    if earlier is not None and (settings.force or earlier.get("status") == "failed"):
        storage.delete(uri)
        earlier = None
    if earlier is not None or not _claim(uri, record):
        return {"status": "duplicate", "key": key, "record": uri,
                "earlier": earlier or read_record(settings.store, key)}  # fmt: skip
    try:
        details = act(body, settings)
    except BaseException:
        with contextlib.suppress(StorageError):
            storage.delete(uri)  # nothing is marked triggered unless it was accepted
        raise
    failed = details.get("status") == "failed"
    record.update(status="failed" if failed else "accepted", details=details)
    storage.write_text(uri, json.dumps(record, indent=1, default=str))
    return {"status": "failed" if failed else "triggered", "key": key, "record": uri,
            "details": details}  # fmt: skip


def store_of_reference(reference: str) -> str:
    """The model store named by a ``--reference STORE@V`` (or a bare store folder)."""
    if "@" in reference:
        return reference.rpartition("@")[0]
    if storage.exists(storage.join(reference, "production.json")):
        return reference
    raise ConfigError(
        f"--reference {reference!r} names no model store for the trigger record",
        hint="pass --store STORE (where STORE/triggers/ records what was triggered)",
    )
