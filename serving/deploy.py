"""Gated deployment of the store's ``production`` version (the pipeline step after register).

Two targets, one entry point (:func:`deploy_step`), chosen in the ``DEPLOY_TARGETS`` registry:

* ``local``: make a running ``imgrec serve`` (found through its state file) load the new
  version through the admin route — in-flight requests finish on the old version — or start
  one when none runs;
* ``cluster``: create or patch an ``InferenceService`` through the kserve SDK (custom imgrec
  predictor or the TorchServe runtime), wait for readiness, and move ``production`` back to the
  previous version when the rollout fails.

Both roll ``production`` back when the new version cannot be served.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgrec.errors import DeployError, ImgrecError
from imgrec.registry import Registry
from imgrec.serving.local_server import DEFAULT_NAME, running_server, state_path, swap_local

IMAGE = os.environ.get("IMGREC_IMAGE", "ghcr.io/imgrec/imgrec:0.1.0")
PREDICTOR_RUNTIME = "imgrec-predictor"  # the ClusterServingRuntime in manifests/base


DEPLOY_TARGETS: Registry[Callable[..., dict[str, Any]]] = Registry("deploy target")


# --- local -------------------------------------------------------------------------------
def start_local(model: str, *, host: str, port: int, name: str, wait_s: float = 300) -> dict:
    """Start ``imgrec serve MODEL`` detached and wait until it is ready."""
    import httpx

    if _port_taken(host, port):  # its readiness would pass for the new server's
        raise DeployError(
            f"port {port} on {host} is taken by a server this step cannot reach: no state file "
            f"{state_path(port)}",
            hint="a server started with another IMGREC_CACHE keeps its state file there: run "
            "both with the same IMGREC_CACHE, or stop that server",
        )
    log = state_path(port).with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    code = (
        "import sys; from imgrec.serving.server import serve; "
        "serve(sys.argv[1], host=sys.argv[2], port=int(sys.argv[3]), name=sys.argv[4])"
    )
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, model, host, str(port), name],
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DeployError(f"imgrec serve exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"{url}/v2/models/{name}/ready", timeout=2).status_code == 200:
                return {"url": url, "pid": proc.pid, "log": str(log)}
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise DeployError(f"imgrec serve not ready after {wait_s:g} s; see {log}")


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


@DEPLOY_TARGETS.register("local")
def deploy_local(
    store_uri: str,
    version: int,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    name: str = DEFAULT_NAME,
    start: bool = True,
    **_: Any,
) -> dict[str, Any]:
    """Hot-swap a running local server to ``STORE@version``, or start one."""
    model = f"{store_uri}@{version}"
    state = running_server(port)
    if state is not None:
        result = swap_local(state, model, name)
        return {"target": "local", "action": "swapped", "url": state["url"], **result}
    if not start:
        return {"target": "local", "action": "none", "reason": f"no server on port {port}"}
    started = start_local(model, host=host, port=port, name=name)
    return {"target": "local", "action": "started", "version": str(version), **started}


# --- cluster -----------------------------------------------------------------------------
def inference_service(
    name: str,
    storage_uri: str,
    *,
    runtime: str = "kserve",
    namespace: str = "imgrec",
    service_account: str = "imgrec-s3",
    logger_url: str | None = "http://imgrec-payload-logger.imgrec.svc.cluster.local",
    cpu: str = "2",
    memory: str = "2Gi",
    min_replicas: int = 1,
    max_replicas: int = 3,
) -> Any:
    """The ``V1beta1InferenceService`` for ``storage_uri`` built with the kserve SDK models.

    ``runtime="kserve"``: the imgrec predictor (ClusterServingRuntime ``imgrec-predictor``,
    model format ``imgrec``; ``storage_uri`` is a model directory). ``runtime="torchserve"``:
    KServe's TorchServe runtime (model format ``pytorch``; ``storage_uri`` holds
    ``config/config.properties`` and ``model-store/*.mar``, see :func:`torchserve_layout`).
    """
    from kserve import models as km
    from kubernetes.client import models as k8s

    resources = k8s.V1ResourceRequirements(
        requests={"cpu": cpu, "memory": memory}, limits={"cpu": cpu, "memory": memory}
    )
    if runtime == "kserve":
        model = km.V1beta1ModelSpec(
            model_format=km.V1beta1ModelFormat(name="imgrec"),
            runtime=PREDICTOR_RUNTIME,
            protocol_version="v2",
            storage_uri=storage_uri,
            resources=resources,
            readiness_probe=_probe(f"/v2/models/{name}/ready", 5),
            liveness_probe=_probe("/v2/health/live", 30),
        )
    elif runtime == "torchserve":
        model = km.V1beta1ModelSpec(
            model_format=km.V1beta1ModelFormat(name="pytorch"),
            protocol_version="v1",
            storage_uri=storage_uri,
            resources=resources,
        )
    else:
        raise DeployError(f"unknown runtime {runtime!r}", hint="use kserve or torchserve")
    logger = km.V1beta1LoggerSpec(mode="all", url=logger_url) if logger_url else None
    predictor = km.V1beta1PredictorSpec(
        model=model,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        service_account_name=service_account,
        logger=logger,
    )
    return km.V1beta1InferenceService(
        api_version="serving.kserve.io/v1beta1",
        kind="InferenceService",
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace,
                                  labels={"app.kubernetes.io/part-of": "imgrec"}),
        spec=km.V1beta1InferenceServiceSpec(predictor=predictor),
    )  # fmt: skip


def _probe(path: str, period: int) -> Any:
    from kubernetes.client import models as k8s

    return k8s.V1Probe(
        http_get=k8s.V1HTTPGetAction(path=path, port=8080),
        period_seconds=period,
        initial_delay_seconds=5,
        failure_threshold=3,
    )


def to_manifest(obj: Any) -> dict[str, Any]:
    """A kserve/kubernetes SDK object as the camelCase dict ``kubectl apply`` takes."""
    from kubernetes.client import ApiClient

    return dict(ApiClient().sanitize_for_serialization(obj))


def torchserve_layout(model_uri: str, dest_uri: str, *, name: str = DEFAULT_NAME) -> str:
    """Write KServe's TorchServe layout for ``model_uri`` under ``dest_uri``; returns it."""
    import tempfile

    from imgrec import storage
    from imgrec.serving.torchserve import build_mar, load_for_archive

    with tempfile.TemporaryDirectory() as tmp:
        mar = build_mar(load_for_archive(model_uri), tmp, name=name)
        storage.write_bytes(storage.join(dest_uri, "model-store", mar.name), mar.read_bytes())
    snapshot = {"name": "startup.cfg", "modelCount": 1, "models": {name: {"1.0": {
        "defaultVersion": True, "marName": f"{name}.mar", "minWorkers": 1, "maxWorkers": 2,
        "batchSize": 1, "maxBatchDelay": 10, "responseTimeout": 60}}}}  # fmt: skip
    config = (
        "inference_address=http://0.0.0.0:8085\nmanagement_address=http://0.0.0.0:8085\n"
        "metrics_address=http://0.0.0.0:8082\nenable_metrics_api=true\nmetrics_format=prometheus\n"
        "number_of_netty_threads=4\njob_queue_size=100\nenable_envvars_config=true\n"
        "install_py_dep_per_model=false\nmodel_store=/mnt/models/model-store\n"
        f"model_snapshot={json.dumps(snapshot)}\n"
    )
    storage.write_text(storage.join(dest_uri, "config", "config.properties"), config)
    return dest_uri


@DEPLOY_TARGETS.register("cluster")
def deploy_cluster(
    store_uri: str,
    version: int,
    *,
    name: str = DEFAULT_NAME,
    namespace: str = "imgrec",
    runtime: str = "kserve",
    timeout_s: int = 600,
    **kw: Any,
) -> dict[str, Any]:
    """Create or patch the InferenceService and wait for it; ``DeployError`` on failure."""
    from kserve import KServeClient

    from imgrec.model_store import ModelStore

    mv = ModelStore(store_uri).get(version)
    uri = mv.model_uri
    if runtime == "torchserve":
        uri = torchserve_layout(mv.model_uri, f"{mv.uri.rstrip('/')}/torchserve", name=name)
    isvc = inference_service(name, uri, runtime=runtime, namespace=namespace, **kw)
    client = KServeClient()
    try:
        client.get(name, namespace=namespace)
        exists = True
    except Exception:
        exists = False
    try:
        if exists:
            client.patch(name, isvc, namespace=namespace)
        else:
            client.create(isvc, namespace=namespace)
        client.wait_isvc_ready(name, namespace=namespace, timeout_seconds=timeout_s)
    except Exception as exc:
        raise DeployError(f"rollout of {name} (version {version}) failed: {exc}") from exc
    return {
        "target": "cluster",
        "action": "patched" if exists else "created",
        "name": name,
        "namespace": namespace,
        "storage_uri": uri,
        "version": str(version),
    }


# --- the step ----------------------------------------------------------------------------
def deploy_step(store_uri: str, version: int, *, target: str = "local", **kw: Any) -> dict:
    """Deploy ``version`` (0 = nothing registered: skip); roll ``production`` back on failure."""
    from imgrec.model_store import ModelStore

    if version <= 0:
        return {"target": target, "action": "skipped", "reason": "no new version registered"}
    deploy = DEPLOY_TARGETS.get(target)
    try:
        return deploy(store_uri, version, **kw)
    except Exception as exc:
        store = ModelStore(store_uri)
        rolled = None
        if store.production_version() == version and len(store.versions()) > 1:
            try:
                rolled = store.rollback(reason=f"deploy of version {version} failed: {exc}")
            except ImgrecError:
                rolled = None
        raise DeployError(
            f"deploying version {version} failed: {exc}",
            hint=(
                f"production rolled back to version {rolled.version}"
                if rolled
                else "production left unchanged"
            ),
        ) from exc


def write_result(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the step's result as JSON (the component's output)."""
    Path(path).write_text(json.dumps(result, indent=2, default=str))
