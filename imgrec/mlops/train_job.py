"""The train step on the cluster: a Kubeflow Training Operator ``PyTorchJob`` (v1), or a
Kubeflow Trainer v2 ``TrainJob`` with ``kind="trainjob"`` (:mod:`imgrec.mlops.trainjob`).

With the pipeline setting ``train_mode=pytorchjob`` the train step does not train in its own
pod: it stages the preprocessed data under ``staging_uri``, creates a PyTorchJob whose
``workers`` pods run the same image and the same train step under ``torchrun`` (DDP: gloo on
CPU, NCCL with ``gpus_per_worker``), waits for it with a timeout while writing its state
changes to the step's log, and copies the model that rank 0 wrote back as the step's output::

    settings = JobSettings(image="ghcr.io/imgrec/imgrec:0.1.0-cuda", workers=2,
                           gpus_per_worker=1, staging_uri="s3://bucket/imgrec-jobs")
    metrics = run_training_job(data_dir, model_dir, settings)

The objects are the ``kubeflow-training`` SDK's models; the API calls go through its
``TrainingClient`` (in-cluster credentials of the step's service account by default). Each
kind of cluster job is one entry of ``JOB_KINDS`` (its object, command, client, success state).
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imgrec import storage
from imgrec.errors import ConfigError, TrainingJobError
from imgrec.mlops.trainjob import TrainJobClient, trainjob, trainjob_command, trainjob_details
from imgrec.registry import Registry

CONTAINER = "pytorch"  # the container name the Training Operator expects in a PyTorchJob
JOB_MODULE = "imgrec.mlops.train_job"


@dataclass(frozen=True)
class JobSettings:
    """How the train step's cluster job runs (compile-time pipeline settings)."""

    image: str
    staging_uri: str  # s3:// prefix the step and the job's pods share (data in, model out)
    workers: int = 2  # pods: one Master and workers - 1 Workers
    gpus_per_worker: int = 0  # processes per pod = GPUs (1 process on CPU)
    cpu: str = "4"
    memory: str = "16G"
    accelerator: str = "nvidia.com/gpu"
    namespace: str = "kubeflow"
    timeout_s: int = 6 * 3600  # the wait; also the job's activeDeadlineSeconds
    poll_s: float = 10.0
    ttl_s: int = 3600  # ttlSecondsAfterFinished: the operator deletes the job and its pods
    backoff_limit: int = 3
    restart_policy: str = "OnFailure"
    device: str = "auto"
    threads: int = 0
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[dict[str, str], ...] = ()  # V1Toleration fields (key, operator...)
    kind: str = "pytorchjob"  # or "trainjob" (Kubeflow Trainer v2)
    runtime: str = "torch-distributed"  # a TrainJob's ClusterTrainingRuntime

    def __post_init__(self) -> None:
        JOB_KINDS.get(self.kind)  # an unknown kind: the known ones, with close matches
        if self.workers < 1:
            raise ConfigError(f"workers={self.workers}: a PyTorchJob needs at least 1")
        if self.gpus_per_worker < 0:
            raise ConfigError(f"gpus_per_worker={self.gpus_per_worker} is negative")
        if not storage.is_s3(self.staging_uri):
            raise ConfigError(
                f"staging_uri {self.staging_uri!r} is not an s3:// prefix",
                hint="the job's pods read the data and write the model there, e.g. "
                "s3://bucket/imgrec-jobs",
            )


def job_command(data_uri: str, out_uri: str, settings: JobSettings) -> list[str]:
    """The container command: the train step under torchrun, one node per pod.

    ``$(VAR)`` are expanded by Kubernetes from the variables the Training Operator sets in
    every pod (``WORLD_SIZE`` = pods, ``RANK`` = this pod, ``MASTER_ADDR``/``PORT``).
    """
    return [
        "python", "-m", "torch.distributed.run",
        "--nnodes=$(WORLD_SIZE)", "--node-rank=$(RANK)",
        "--master-addr=$(MASTER_ADDR)", "--master-port=$(MASTER_PORT)",
        f"--nproc-per-node={max(1, settings.gpus_per_worker)}",
        "-m", JOB_MODULE, "--data", data_uri, "--out", out_uri,
        "--device", settings.device, "--threads", str(settings.threads),
    ]  # fmt: skip


def pytorchjob(name: str, command: list[str], settings: JobSettings) -> Any:
    """The ``KubeflowOrgV1PyTorchJob``: Master + Workers running ``command`` in ``image``
    with CPU/memory (and GPU) requests = limits, restart policy, backoff limit, deadline,
    and cleanup (running pods on completion, the job ``ttl_s`` after it finishes)."""
    from kubeflow.training import models as kf
    from kubernetes import client as k8s

    resources: dict[str, str] = {"cpu": settings.cpu, "memory": settings.memory}
    if settings.gpus_per_worker:
        resources[settings.accelerator] = str(settings.gpus_per_worker)
    container = k8s.V1Container(
        name=CONTAINER,
        image=settings.image,
        command=command,
        env=[k8s.V1EnvVar(name="PYTHONUNBUFFERED", value="1")],
        resources=k8s.V1ResourceRequirements(requests=resources, limits=dict(resources)),
    )
    template = k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(annotations={"sidecar.istio.io/inject": "false"}),
        spec=k8s.V1PodSpec(
            containers=[container],
            node_selector=dict(settings.node_selector) or None,
            tolerations=[k8s.V1Toleration(**t) for t in settings.tolerations] or None,
        ),
    )

    def replicas(n: int) -> Any:
        return kf.KubeflowOrgV1ReplicaSpec(
            replicas=n, restart_policy=settings.restart_policy, template=template
        )

    specs = {"Master": replicas(1)}
    if settings.workers > 1:
        specs["Worker"] = replicas(settings.workers - 1)
    return kf.KubeflowOrgV1PyTorchJob(
        api_version="kubeflow.org/v1",
        kind="PyTorchJob",
        metadata=k8s.V1ObjectMeta(
            name=name, namespace=settings.namespace, labels={"app.kubernetes.io/part-of": "imgrec"}
        ),
        spec=kf.KubeflowOrgV1PyTorchJobSpec(
            pytorch_replica_specs=specs,
            run_policy=kf.KubeflowOrgV1RunPolicy(
                clean_pod_policy="Running",
                ttl_seconds_after_finished=settings.ttl_s,
                backoff_limit=settings.backoff_limit,
                active_deadline_seconds=settings.timeout_s,
            ),
        ),
    )


@dataclass(frozen=True)
class JobKind:
    """One kind of cluster job: how its object, command and client are made, the condition
    that means success, the label selecting its pods, and the details logged per state."""

    build: Callable[[str, list[str], JobSettings], Any]
    command: Callable[[str, str, JobSettings], list[str]]
    client: Callable[[JobSettings], Any]
    succeeded: str
    pod_label: str
    details: Callable[[Any], dict[str, Any]]
    delete_when_done: bool  # no TTL of its own: the step deletes it once its model is copied


def _replica_details(job: Any) -> dict[str, Any]:
    statuses = getattr(job.status, "replica_statuses", None) or {}  # none when new
    return {k: v.to_dict() for k, v in statuses.items()}


def job_state(job: Any) -> str:
    """The newest true condition of a job (``Created``, ``Running``, ``Succeeded``...)."""
    conditions = [c for c in (getattr(job.status, "conditions", None) or []) if c.status == "True"]
    return conditions[-1].type if conditions else "Pending"


def wait_for_job(
    client: Any, name: str, settings: JobSettings, log: Callable[[str], None] = print
) -> Any:
    """Poll the job until it succeeds (returned), fails (``TrainingJobError``) or ``timeout_s``
    passes (``TrainingJobError``; the job is deleted). Each state change is logged once."""
    kind = JOB_KINDS.get(settings.kind)
    deadline = time.monotonic() + settings.timeout_s
    seen = ""
    while True:
        job = client.get_job(name, namespace=settings.namespace)
        state = job_state(job)
        if state != seen:
            details = json.dumps(kind.details(job), default=str)
            log(f"{settings.kind} {settings.namespace}/{name}: {state} {details}")
            seen = state
        if state == kind.succeeded:
            return job
        if state == "Failed":
            reason = [c.message for c in job.status.conditions if c.type == "Failed"]
            raise TrainingJobError(
                f"{settings.kind} {name} failed: {reason[-1] if reason else 'no message'}",
                hint=f"kubectl -n {settings.namespace} logs -l {kind.pod_label}={name}",
            )
        if time.monotonic() >= deadline:
            client.delete_job(name, namespace=settings.namespace)
            raise TrainingJobError(
                f"{settings.kind} {name} did not finish within {settings.timeout_s} s (deleted)",
                hint="raise the pipeline's job timeout or give the job more workers",
            )
        time.sleep(settings.poll_s)


def training_client(settings: JobSettings) -> Any:
    """The SDK's ``TrainingClient`` with in-cluster credentials (or the local kube-config)."""
    from kubeflow.training import TrainingClient

    return TrainingClient(namespace=settings.namespace)


JOB_KINDS: Registry[JobKind] = Registry("cluster job kind", list_hint="--train-mode")
JOB_KINDS.add(
    "pytorchjob",
    JobKind(pytorchjob, job_command, training_client, "Succeeded",
            "training.kubeflow.org/job-name", _replica_details, delete_when_done=False),
)  # fmt: skip
JOB_KINDS.add(
    "trainjob",
    JobKind(trainjob, trainjob_command, lambda s: TrainJobClient(s.namespace), "Complete",
            "jobset.sigs.k8s.io/jobset-name", trainjob_details, delete_when_done=True),
)  # fmt: skip


def run_training_job(
    data_dir: str,
    model_dir: str,
    settings: JobSettings,
    *,
    client: Any = None,
    log: Callable[[str], None] = print,
    report_path: str | None = None,
) -> dict[str, Any]:
    """Stage ``data_dir``, run the cluster job (``settings.kind``), copy its model to
    ``model_dir``; returns the val metrics the job's rank 0 wrote (and its ``report.html`` to
    ``report_path``). ``client`` defaults to the kind's (``TrainingClient``, ``TrainJobClient``)."""
    from imgrec.mlops.steps import copy_tree

    kind = JOB_KINDS.get(settings.kind)
    name = f"imgrec-train-{uuid.uuid4().hex[:8]}"
    root = storage.join(settings.staging_uri, name)
    copy_tree(data_dir, storage.join(root, "data"))
    job = kind.build(name, kind.command(storage.join(root, "data"), root, settings), settings)
    client = client or kind.client(settings)
    client.create_job(job=job, namespace=settings.namespace)
    log(f"created {settings.kind} {settings.namespace}/{name} ({settings.workers} workers)")
    wait_for_job(client, name, settings, log)
    copy_tree(storage.join(root, "model"), model_dir)
    if kind.delete_when_done:
        client.delete_job(name, namespace=settings.namespace)
        log(f"deleted {settings.kind} {settings.namespace}/{name}")
    report = storage.join(root, "report.html")
    if report_path and storage.exists(report):
        storage.copy(report, report_path)
    return dict(json.loads(storage.read_text(storage.join(root, "metrics.json"))))


def settings_json(settings: JobSettings) -> str:
    """``settings`` as the JSON the pipeline passes to the train step (compile time)."""
    import dataclasses

    return json.dumps(dataclasses.asdict(settings), sort_keys=True)


def job_main(argv: list[str] | None = None) -> None:
    """What each pod runs (under torchrun): the train step; rank 0 writes ``OUT/model``,
    ``OUT/metrics.json`` and ``OUT/report.html``."""
    import argparse

    from imgrec.engine.distributed import env_world
    from imgrec.mlops.steps import train_step

    parser = argparse.ArgumentParser(prog=f"python -m {JOB_MODULE}")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    run_dir = tempfile.mkdtemp(prefix="imgrec-job-")
    model_dir = storage.join(args.out, "model")
    metrics = train_step(args.data, model_dir, run_dir, device=args.device, threads=args.threads)
    if env_world().main:
        storage.write_text(storage.join(args.out, "metrics.json"), json.dumps(metrics, default=str))
        report = storage.join(run_dir, "report.html")
        if storage.exists(report):
            storage.copy(report, storage.join(args.out, "report.html"))


if __name__ == "__main__":
    job_main()
