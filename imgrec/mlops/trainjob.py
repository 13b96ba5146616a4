"""The train step as a Kubeflow Trainer v2 ``TrainJob`` (``trainer.kubeflow.org/v1alpha1``).

Where the cluster runs Kubeflow Trainer v2 instead of the Training Operator, the train step
creates a ``TrainJob`` that references a training runtime (``torch-distributed``, the
ClusterTrainingRuntime Trainer installs) and overrides its trainer: the same image, ``workers``
nodes with the same CPU/memory/GPU resources, ``GPUs`` (or 1) processes per node. The runtime
sets torchrun's ``PET_NNODES``, ``PET_NODE_RANK``, ``PET_MASTER_ADDR``... in every node, so the
command is the train step under a bare ``torchrun``::

    job = trainjob("imgrec-train-1a2b", trainjob_command(data, out, settings), settings)
    client = TrainJobClient("kubeflow")
    client.create_job(job, namespace="kubeflow"); client.get_job(name, namespace="kubeflow")

The objects are the ``kubeflow-trainer-api`` SDK models; the calls go through the Kubernetes
client's ``CustomObjectsApi`` (in-cluster credentials, or the local kube-config).
"""

from __future__ import annotations

from typing import Any

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
JOB_MODULE = "imgrec.mlops.train_job"


def trainjob_command(data_uri: str, out_uri: str, settings: Any) -> list[str]:
    """The trainer command: the train step under torchrun, which takes the node count, rank,
    processes per node and master address from the runtime's ``PET_*`` variables."""
    return [
        "python", "-m", "torch.distributed.run", "-m", JOB_MODULE,
        "--data", data_uri, "--out", out_uri,
        "--device", settings.device, "--threads", str(settings.threads),
    ]  # fmt: skip


def trainjob(name: str, command: list[str], settings: Any) -> Any:
    """The ``TrainerV1alpha1TrainJob`` for ``settings`` (a :class:`~imgrec.mlops.train_job.
    JobSettings`): runtime ``settings.runtime``, ``workers`` nodes running ``command`` in
    ``image`` with CPU/memory (and GPU) requests = limits, and ``activeDeadlineSeconds``."""
    from kubeflow_trainer_api import models as tr

    amounts = {"cpu": settings.cpu, "memory": settings.memory}
    if settings.gpus_per_worker:
        amounts[settings.accelerator] = str(settings.gpus_per_worker)

    def resources() -> dict[str, Any]:
        return {k: tr.IoK8sApimachineryPkgApiResourceQuantity(v) for k, v in amounts.items()}

    return tr.TrainerV1alpha1TrainJob(
        api_version=f"{GROUP}/{VERSION}",
        kind="TrainJob",
        metadata=tr.IoK8sApimachineryPkgApisMetaV1ObjectMeta(
            name=name, namespace=settings.namespace, labels={"app.kubernetes.io/part-of": "imgrec"}
        ),
        spec=tr.TrainerV1alpha1TrainJobSpec(
            runtime_ref=tr.TrainerV1alpha1RuntimeRef(
                name=settings.runtime, kind="ClusterTrainingRuntime", api_group=GROUP
            ),
            trainer=tr.TrainerV1alpha1Trainer(
                image=settings.image,
                command=command,
                env=[tr.IoK8sApiCoreV1EnvVar(name="PYTHONUNBUFFERED", value="1")],
                num_nodes=settings.workers,
                num_proc_per_node=max(1, settings.gpus_per_worker),
                resources_per_node=tr.IoK8sApiCoreV1ResourceRequirements(
                    requests=resources(), limits=resources()
                ),
            ),
            active_deadline_seconds=settings.timeout_s,
        ),
    )


class TrainJobClient:
    """Create, get and delete TrainJobs (``get_job`` returns the SDK model), with the calls
    the Training Operator's ``TrainingClient`` offers for PyTorchJobs."""

    def __init__(self, namespace: str, client_configuration: Any = None) -> None:
        from kubernetes import client, config

        if client_configuration is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
        self.namespace = namespace
        self.api = client.CustomObjectsApi(client.ApiClient(client_configuration))

    def create_job(self, job: Any, namespace: str | None = None) -> None:
        self.api.create_namespaced_custom_object(
            GROUP, VERSION, namespace or self.namespace, PLURAL, job.to_dict()
        )

    def get_job(self, name: str, namespace: str | None = None) -> Any:
        from kubeflow_trainer_api import models as tr

        raw = self.api.get_namespaced_custom_object(
            GROUP, VERSION, namespace or self.namespace, PLURAL, name
        )
        return tr.TrainerV1alpha1TrainJob.from_dict(raw)

    def delete_job(self, name: str, namespace: str | None = None) -> None:
        self.api.delete_namespaced_custom_object(
            GROUP, VERSION, namespace or self.namespace, PLURAL, name
        )


def trainjob_details(job: Any) -> dict[str, Any]:
    """The replicated jobs' counts of a TrainJob's status (``{}`` before the first)."""
    jobs = getattr(job.status, "jobs_status", None) or []
    return {j.name: j.to_dict() for j in jobs}
