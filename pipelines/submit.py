"""Send the compiled training pipeline to Kubeflow Pipelines (KFP v2 REST, through kfp.Client).

* :func:`upload`: the pipeline ``name`` is created on first use, later uploads add a pipeline
  version (``imgrec pipeline upload``, run by cd.yml for every commit);
* :func:`submit`: upload, then a run of that version in an experiment, then read the run back
  (``imgrec pipeline submit``); with ``wait_s`` it polls the run until it ends;
* :func:`record_submission`: a run folder beside the local runs (``runs/pipeline/STAMP/``) whose
  ``summary.json`` names the host and run id, so the dashboard's Runs page links to the run in
  the KFP UI (``{host}/#/runs/details/{run_id}``).

The REST calls made (tests/pipeline/kfp_api_server.py implements them on loopback): healthz,
list pipelines (by name), upload pipeline / upload pipeline version, list pipeline versions,
list/create experiment, create run, get run. ``KF_PIPELINES_TOKEN`` (a bearer token) is sent
when set. Example::

    ids = upload("https://kfp.example.com", "pipelines/training.yaml", version="3f2a9c1")
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from imgrec import storage
from imgrec.errors import ImgrecError, KfpError

DONE_STATES = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"}


def client(host: str, namespace: str | None = None) -> Any:
    """A ``kfp.Client`` for ``host`` (token from ``KF_PIPELINES_TOKEN`` when set)."""
    import kfp

    kw: dict[str, Any] = {"host": host.rstrip("/")}
    if namespace:
        kw["namespace"] = namespace
    if os.environ.get("KF_PIPELINES_TOKEN"):
        kw["existing_token"] = os.environ["KF_PIPELINES_TOKEN"]
    try:
        return kfp.Client(**kw)
    except Exception as exc:
        raise KfpError(
            f"cannot reach Kubeflow Pipelines at {host}: {exc}",
            hint="check --host (the KFP API URL) and KF_PIPELINES_TOKEN",
        ) from exc


def upload(
    host: str,
    package: str,
    *,
    name: str,
    version: str,
    description: str = "",
    namespace: str | None = None,
    kfp_client: Any = None,
) -> dict[str, str]:
    """Upload ``package`` as version ``version`` of pipeline ``name`` (created if missing)."""
    c = kfp_client or client(host, namespace)
    try:
        pipeline_id = c.get_pipeline_id(name)
        if pipeline_id is None:
            created = c.upload_pipeline(
                package, pipeline_name=name, description=description, namespace=namespace
            )
            pipeline_id = created.pipeline_id
            listed = c.list_pipeline_versions(pipeline_id, page_size=1, sort_by="created_at desc")
            version_id = listed.pipeline_versions[0].pipeline_version_id
        else:
            added = c.upload_pipeline_version(
                package,
                pipeline_version_name=version,
                pipeline_id=pipeline_id,
                description=description,
            )
            version_id = added.pipeline_version_id
    except ImgrecError:
        raise
    except Exception as exc:
        raise KfpError(
            f"uploading {name} {version} to {host} failed: {_reason(exc)}",
            hint="check the host, the token and the pipeline name",
        ) from exc
    return {"pipeline_id": str(pipeline_id), "version_id": str(version_id)}


def submit(
    host: str,
    package: str,
    *,
    name: str,
    version: str,
    experiment: str,
    run_name: str,
    arguments: dict[str, Any],
    namespace: str | None = None,
    wait_s: float = 0,
    poll_s: float = 5,
) -> dict[str, Any]:
    """Upload ``package``, start a run of that version in ``experiment``, read it back."""
    c = client(host, namespace)
    ids = upload(host, package, name=name, version=version, namespace=namespace, kfp_client=c)
    try:
        exp = c.create_experiment(experiment, namespace=namespace)
        run = c.run_pipeline(
            exp.experiment_id,
            run_name,
            params=arguments,
            pipeline_id=ids["pipeline_id"],
            version_id=ids["version_id"],
        )
        state = str(c.get_run(run.run_id).state or "")
        deadline = time.monotonic() + wait_s
        while wait_s and state not in DONE_STATES and time.monotonic() < deadline:
            time.sleep(poll_s)
            state = str(c.get_run(run.run_id).state or "")
    except Exception as exc:
        raise KfpError(
            f"starting a run of {name} {version} on {host} failed: {_reason(exc)}",
            hint="check the experiment, the namespace and the parameters",
        ) from exc
    return {**ids, "experiment_id": exp.experiment_id, "run_id": run.run_id, "state": state}


def record_submission(
    runs_dir: str | os.PathLike[str], host: str, result: dict[str, Any], *,
    experiment: str, run_name: str, arguments: dict[str, Any],
) -> Path:  # fmt: skip
    """Write ``RUNS_DIR/STAMP/summary.json`` for a run started on Kubeflow Pipelines (the result
    of :func:`submit`); returns the folder. ``status`` is ``submitted`` unless the run had
    already ended (``--wait``); ``kfp`` holds the host, the ids and the state then read."""
    folder = Path(runs_dir) / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    state = str(result.get("state") or "")
    summary = {
        "status": state.lower() if state in DONE_STATES else "submitted",
        "kfp": {
            "host": host.rstrip("/"), "run_id": result["run_id"], "run_name": run_name,
            "experiment": experiment, "experiment_id": result.get("experiment_id"),
            "pipeline_id": result.get("pipeline_id"), "version_id": result.get("version_id"),
            "state": state, "recorded": datetime.now().astimezone().isoformat(timespec="seconds"),
        },
        "params": arguments,
    }  # fmt: skip
    folder.mkdir(parents=True)
    storage.write_text(folder / "summary.json", json.dumps(summary, indent=1, default=str))
    return folder


def _reason(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    body = str(getattr(exc, "body", "") or exc).strip().splitlines()
    text = body[0][:300] if body else type(exc).__name__
    return f"HTTP {status}: {text}" if status else text
