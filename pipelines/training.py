"""The imgrec training pipeline: ingest -> validate -> preprocess -> train -> evaluate -> gate
-> register (only when the gate passes).

The same definition compiles to the KFP IR YAML for a cluster and runs unchanged with kfp's
local runner (``imgrec pipeline run --local``)::

    from imgrec.pipelines.training import build_pipeline, ClusterSettings
    pipeline = build_pipeline()                                   # local: no resource requests
    pipeline = build_pipeline(ClusterSettings(gpus=1, accelerator="nvidia.com/gpu"))
    kfp.compiler.Compiler().compile(pipeline, "pipelines/training.yaml")

Cluster settings (resources, accelerator, node selector, tolerations) are applied to the train
task only in a compiled pipeline; they are compile-time settings, the rest are run parameters.
With ``ClusterSettings(train_mode="pytorchjob", workers=N, job_staging_uri="s3://...")`` the
train task creates a Training Operator PyTorchJob instead (docs/distributed.md).
"""

# No `from __future__ import annotations`: KFP reads the pipeline's annotations as types.
from dataclasses import dataclass, field
from typing import Any, NamedTuple

PIPELINE_NAME = "imgrec-training"


@dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration for the train pod (``key=value:Effect`` on the command line)."""

    key: str
    value: str = ""
    effect: str = "NoSchedule"
    operator: str = "Equal"

    @classmethod
    def parse(cls, text: str) -> "Toleration":
        """``"nvidia.com/gpu=present:NoSchedule"`` or ``"nvidia.com/gpu:NoSchedule"`` (Exists)."""
        from imgrec.errors import ConfigError

        body, _, effect = text.partition(":")
        key, eq, value = body.partition("=")
        effect = effect or "NoSchedule"
        if not key or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ConfigError(
                f"bad toleration {text!r}",
                hint="use key=value:Effect or key:Effect, Effect one of NoSchedule, "
                "PreferNoSchedule, NoExecute",
            )
        return cls(key=key, value=value, effect=effect, operator="Equal" if eq else "Exists")


@dataclass(frozen=True)
class ClusterSettings:
    """What the train task requests on a cluster."""

    image: str | None = None  # None: the configured component image
    cpu: str = "4"
    memory: str = "16G"
    accelerator: str = ""  # e.g. "nvidia.com/gpu"; empty: CPU only
    gpus: int = 0
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Toleration, ...] = field(default=())
    # train_mode "pytorchjob": the train step creates a Training Operator PyTorchJob of
    # `workers` pods (each with the resources above, `gpus` GPUs each) and waits for it;
    # "trainjob": a Kubeflow Trainer v2 TrainJob of `workers` nodes on `trainjob_runtime`
    train_mode: str = "pod"
    workers: int = 2
    job_staging_uri: str = ""  # s3:// prefix shared by the step and the job's pods
    job_namespace: str = "kubeflow"
    job_timeout_s: int = 6 * 3600
    trainjob_runtime: str = "torch-distributed"  # the TrainJob's ClusterTrainingRuntime

    def __post_init__(self) -> None:
        from imgrec.errors import ConfigError

        if self.train_mode not in TRAIN_MODES:
            raise ConfigError(
                f"unknown train_mode {self.train_mode!r}", hint=f"one of {', '.join(TRAIN_MODES)}"
            )


TRAIN_MODES = ("pod", "pytorchjob", "trainjob")  # the last two: imgrec.mlops.train_job.JOB_KINDS


def job_settings(settings: ClusterSettings, image: str) -> str:
    """The JSON of the cluster job settings the train step gets (``train_mode=pytorchjob`` or
    ``trainjob``)."""
    from imgrec.mlops.train_job import JobSettings, settings_json

    tolerations = tuple(
        {k: v for k, v in vars(t).items() if v} for t in settings.tolerations
    )  # V1Toleration fields
    return settings_json(
        JobSettings(
            image=image,
            staging_uri=settings.job_staging_uri,
            workers=settings.workers,
            gpus_per_worker=settings.gpus,
            cpu=settings.cpu,
            memory=settings.memory,
            accelerator=settings.accelerator or "nvidia.com/gpu",
            namespace=settings.job_namespace,
            timeout_s=settings.job_timeout_s,
            node_selector=settings.node_selector,
            tolerations=tolerations,
            kind=settings.train_mode,
            runtime=settings.trainjob_runtime,
        )
    )


def _apply_cluster(task: Any, settings: ClusterSettings) -> None:
    from kfp import kubernetes

    task.set_cpu_request(settings.cpu).set_cpu_limit(settings.cpu)
    task.set_memory_request(settings.memory).set_memory_limit(settings.memory)
    if settings.gpus:
        task.set_accelerator_type(settings.accelerator or "nvidia.com/gpu")
        task.set_accelerator_limit(settings.gpus)
    for key, value in settings.node_selector:
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for t in settings.tolerations:
        kubernetes.add_toleration(
            task,
            key=t.key,
            operator=t.operator,  # type: ignore[arg-type]
            value=t.value or None,
            effect=t.effect,  # type: ignore[arg-type]
        )


def build_pipeline(cluster: ClusterSettings | None = None, image: str | None = None) -> Any:
    """The pipeline; with ``cluster`` the train task requests those resources."""
    from kfp import dsl

    from imgrec.components import build_components, component_image

    chosen_image = image or (cluster.image if cluster else None)
    ops = build_components(chosen_image)
    as_job = cluster is not None and cluster.train_mode != "pod"
    job = ""
    if cluster is not None and as_job:
        job = job_settings(cluster, chosen_image or component_image())

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Ingest, validate (Great Expectations), preprocess, train, evaluate, gate "
        "and register an imgrec image classifier (task=classify) or object detector (task=detect).",
    )
    def training(
        data_uri: str = "data/mnist5k",
        store_uri: str = "model-store",
        new_data_uri: str = "",
        new_holdout_fraction: float = 0.3,
        new_data_share: float = 0.5,
        init_from: str = "",
        task: str = "classify",
        architecture: str = "auto",
        img_size: int = 0,
        epochs: int = 0,
        train_overrides: str = "",
        device: str = "auto",
        train_threads: int = 0,
        val_fraction: float = 0.2,
        seed: int = 0,
        eval_split: str = "val",
        gate_metric: str = "auto",
        gate_min_improvement: float = 0.002,
        gate_max_class_regression: float = 0.05,
        gate_absolute_floor: float = 0.5,
        gate_max_base_drop: float = 0.01,
        gate_min_regression_z: float = 1.645,
        labels: str = "",
        min_images: int = 10,
        max_unreadable_fraction: float = 0.05,
        min_images_per_class: int = 1,
        max_class_imbalance: float = 10.0,
        min_val_fraction: float = 0.05,
        max_val_fraction: float = 0.5,
        min_image_size: int = 8,
        max_image_size: int = 20000,
        deploy_target: str = "none",
        deploy_runtime: str = "kserve",
        service_name: str = "imgrec",
        namespace: str = "default",
        serve_port: int = 8080,
    ) -> NamedTuple(  # type: ignore[valid-type]
        "TrainingOutputs", [("registered_version", int), ("gate", dict), ("metrics", dict)]
    ):
        ingest = ops["ingest"](
            data_uri=data_uri,
            task=task,
            val_fraction=val_fraction,
            seed=seed,
            new_data_uri=new_data_uri,
            new_holdout_fraction=new_holdout_fraction,
            new_data_share=new_data_share,
        )
        manifest = ingest.outputs["manifest"]
        check = ops["validate"](
            manifest=manifest,
            labels=labels,
            min_images=min_images,
            max_unreadable_fraction=max_unreadable_fraction,
            min_images_per_class=min_images_per_class,
            max_class_imbalance=max_class_imbalance,
            min_val_fraction=min_val_fraction,
            max_val_fraction=max_val_fraction,
            min_image_size=min_image_size,
            max_image_size=max_image_size,
        )
        pre = ops["preprocess"](
            manifest=manifest,
            task=task,
            architecture=architecture,
            img_size=img_size,
            epochs=epochs,
            device=device,
            overrides=train_overrides,
            init_from=init_from,
            store_uri=store_uri,
        ).after(check)
        if as_job:  # the cluster job's pods get the resources; this step only waits
            assert cluster is not None
            train = ops["train_on_cluster"](
                data=pre.outputs["data"], device=device, threads=train_threads, job_settings=job
            ).set_display_name(f"train ({cluster.train_mode})")
        else:
            train = ops["train"](data=pre.outputs["data"], device=device, threads=train_threads)
            if cluster is not None:
                _apply_cluster(train, cluster)
        evaluate = ops["evaluate"](
            model=train.outputs["model"], manifest=manifest, split=eval_split
        )
        gate = ops["gate"](
            candidate=evaluate.outputs["Output"],
            model=train.outputs["model"],
            manifest=manifest,
            store_uri=store_uri,
            split=eval_split,
            metric=gate_metric,
            min_improvement=gate_min_improvement,
            max_class_regression=gate_max_class_regression,
            absolute_floor=gate_absolute_floor,
            max_base_drop=gate_max_base_drop,
            min_regression_z=gate_min_regression_z,
        )
        with dsl.If(gate.outputs["passed"] == True, name="gate-passed"):  # noqa: E712
            register = ops["register"](
                model=train.outputs["model"],
                manifest=manifest,
                store_uri=store_uri,
                metrics=evaluate.outputs["Output"],
                gate_details=gate.outputs["details"],
            )
            # deploy_target: none | local (hot-swap or start `imgrec serve`) | cluster (KServe).
            with dsl.If(deploy_target != "none", name="deploy-enabled"):
                ops["deploy"](
                    store_uri=store_uri,
                    version=register.outputs["Output"],
                    target=deploy_target,
                    runtime=deploy_runtime,
                    service_name=service_name,
                    namespace=namespace,
                    port=serve_port,
                )
        with dsl.Else(name="gate-failed"):
            refused = ops["not_registered"](gate_reasons=gate.outputs["reasons"])
        TrainingOutputs = NamedTuple(  # noqa: UP014 - KFP reads this form
            "TrainingOutputs", [("registered_version", int), ("gate", dict), ("metrics", dict)]
        )
        return TrainingOutputs(
            registered_version=dsl.OneOf(register.outputs["Output"], refused.outputs["Output"]),
            gate=gate.outputs["details"],
            metrics=evaluate.outputs["Output"],
        )

    return training


def default_params() -> dict[str, Any]:
    """The pipeline's run parameters with their default values, in order."""
    import inspect

    func = build_pipeline().pipeline_func
    return {name: p.default for name, p in inspect.signature(func).parameters.items()}


GPU_PRESET = ClusterSettings(
    cpu="8",
    memory="32G",
    accelerator="nvidia.com/gpu",
    gpus=1,
    node_selector=(("nvidia.com/gpu.present", "true"),),
    tolerations=(Toleration(key="nvidia.com/gpu", effect="NoSchedule", operator="Exists"),),
)
"""The settings of the committed ``training-gpu.yaml`` (compiled with the ``-cuda`` image)."""


def compile_pipeline(
    output: str, cluster: ClusterSettings | None = None, image: str | None = None
) -> str:
    """Compile to KFP IR YAML at ``output`` (deterministic for the same code and settings)."""
    from kfp import compiler

    compiler.Compiler().compile(build_pipeline(cluster or ClusterSettings(), image), output)
    return output


def committed_variants() -> dict[str, tuple[ClusterSettings, str | None]]:
    """The compiled files kept in the repository: file name -> (cluster settings, image)."""
    from imgrec.components import DEFAULT_IMAGE

    return {
        "training.yaml": (ClusterSettings(), DEFAULT_IMAGE),
        "training-gpu.yaml": (GPU_PRESET, DEFAULT_IMAGE + "-cuda"),
    }


def compile_committed(folder: str = "pipelines") -> list[str]:
    """Recompile every committed variant into ``folder``
    (``python -m imgrec.pipelines.training``)."""
    import os

    return [
        compile_pipeline(os.path.join(folder, name), cluster, image)
        for name, (cluster, image) in committed_variants().items()
    ]


if __name__ == "__main__":
    for path in compile_committed():
        print(f"wrote {path}")
