"""train_mode=trainjob: the compiled pipeline's Kubeflow Trainer v2 TrainJob (SDK models of
``kubeflow-trainer-api``), and the create/wait/delete calls against the loopback Kubernetes
API server (``k8s_api_server.py``), once with the job's real command under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from k8s_api_server import K8sApiServer

from imgrec.errors import TrainingJobError, UnknownNameError
from imgrec.mlops.train_job import JOB_MODULE, JobSettings, run_training_job
from imgrec.mlops.trainjob import TrainJobClient, trainjob, trainjob_command
from imgrec.pipelines.training import ClusterSettings, compile_pipeline

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/imgrec:1.2.3-cuda"
PATH = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/ml/trainjobs"


def test_compiled_pipeline_creates_a_complete_trainjob(tmp_path: Path) -> None:
    from kfp import components
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

    cluster = ClusterSettings(
        cpu="8", memory="32G", accelerator="nvidia.com/gpu", gpus=2, train_mode="trainjob",
        workers=3, job_staging_uri="s3://ml/imgrec-jobs", job_namespace="team-a",
        job_timeout_s=7200, trainjob_runtime="torch-distributed-gpu",
    )  # fmt: skip
    path = compile_pipeline(str(tmp_path / "job.yaml"), cluster, IMAGE)
    components.load_component_from_file(path)  # the SDK reads (validates) the compiled IR
    spec = yaml.safe_load(Path(path).read_text())
    task = spec["root"]["dag"]["tasks"]["train-on-cluster"]
    given = task["inputs"]["parameters"]["job_settings"]["runtimeValue"]["constant"]
    settings = JobSettings(**json.loads(given))
    assert settings.kind == "trainjob"

    command = trainjob_command("s3://ml/imgrec-jobs/j/data", "s3://ml/imgrec-jobs/j", settings)
    body = trainjob("imgrec-train-x", command, settings).to_dict()
    # the SDK model validates the body strictly (types, required fields) on the way back
    assert TrainerV1alpha1TrainJob.from_dict(body).to_dict() == body
    assert body["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and body["kind"] == "TrainJob"
    assert body["metadata"]["namespace"] == "team-a"
    assert body["spec"]["runtimeRef"] == {"name": "torch-distributed-gpu",
                                          "kind": "ClusterTrainingRuntime",
                                          "apiGroup": "trainer.kubeflow.org"}  # fmt: skip
    assert body["spec"]["activeDeadlineSeconds"] == 7200
    trainer = body["spec"]["trainer"]
    assert trainer["image"] == IMAGE and trainer["numNodes"] == 3
    assert trainer["numProcPerNode"] == 2
    wanted = {"cpu": "8", "memory": "32G", "nvidia.com/gpu": "2"}
    assert trainer["resourcesPerNode"] == {"limits": wanted, "requests": wanted}
    # torchrun takes nodes, rank and master from the runtime's PET_* variables
    assert trainer["command"][:5] == ["python", "-m", "torch.distributed.run", "-m", JOB_MODULE]
    assert not any(a.startswith("--nnodes") for a in trainer["command"])


def test_an_unknown_job_kind_names_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="traijob"):
        JobSettings(image=IMAGE, staging_uri="s3://b/p", kind="traijob")


def _settings(bucket: str, **kw: object) -> JobSettings:
    base = {"image": IMAGE, "staging_uri": f"s3://{bucket}/jobs", "namespace": "ml",
            "poll_s": 0.05, "timeout_s": 60, "kind": "trainjob"}  # fmt: skip
    return JobSettings(**{**base, **kw})  # type: ignore[arg-type]


def test_a_failed_trainjob_is_an_error_naming_its_pods(
    tmp_path: Path, make_bucket, s3_server: str
) -> None:
    def operator(namespace: str, name: str, job: dict) -> None:
        time.sleep(0.2)
        k8s.set_state(namespace, name, "Created")
        time.sleep(0.2)
        k8s.set_state(namespace, name, "Failed", "node-0 OOMKilled")

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train_config.json").write_text("{}")
    lines: list[str] = []
    with (
        K8sApiServer(operator) as k8s,
        pytest.raises(TrainingJobError, match=r"trainjob .* failed: node-0 OOMKilled") as err,
    ):
        client = TrainJobClient("ml", client_configuration=k8s.configuration())
        run_training_job(str(tmp_path / "data"), str(tmp_path / "model"),
                         _settings(make_bucket()), client=client, log=lines.append)  # fmt: skip
    assert "jobset.sigs.k8s.io/jobset-name=imgrec-train-" in err.value.hint
    assert k8s.requests[0].method == "POST" and k8s.requests[0].path == PATH
    states = [line.split(": ")[1].split()[0] for line in lines if line.startswith("trainjob")]
    assert states == ["Pending", "Created", "Failed"] or states == ["Created", "Failed"]


@pytest.mark.slow
def test_the_trainjob_trains_and_is_deleted_once_its_model_is_copied(
    tmp_path: Path, make_bucket, s3_server: str
) -> None:
    """The operator runs the TrainJob's real command with the variables Trainer's torch
    runtime sets (one node, 2 processes per node) on this machine."""
    sys.path.insert(0, str(ROOT / "tests" / "engine"))
    from train_fixtures import make_imagefolder

    from imgrec.mlops.steps import ingest_step, preprocess_step

    make_imagefolder(tmp_path / "images", n_train=12, n_val=4)
    ingest_step(str(tmp_path / "images"), str(tmp_path / "manifest"))
    preprocess_step(str(tmp_path / "manifest"), str(tmp_path / "pre"), model="small_resnet",
                    epochs=1, overrides="batch_size=8,threads=1,report=false")  # fmt: skip

    def operator(namespace: str, name: str, job: dict) -> None:
        command = [
            sys.executable if a == "python" else a for a in job["spec"]["trainer"]["command"]
        ]
        pythonpath = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "PET_NNODES": "1", "PET_NODE_RANK": "0", "PET_NPROC_PER_NODE": "2",
               "PET_STANDALONE": "1", "PYTHONPATH": pythonpath}  # fmt: skip
        # (PET_STANDALONE: a free local rendezvous port, where the runtime sets PET_MASTER_*)
        k8s.set_state(namespace, name, "Created")
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        k8s.set_state(namespace, name, "Complete" if done.returncode == 0 else "Failed",
                      done.stderr[-2000:])  # fmt: skip

    lines: list[str] = []
    with K8sApiServer(operator) as k8s:
        client = TrainJobClient("ml", client_configuration=k8s.configuration())
        settings = _settings(make_bucket(), timeout_s=600, workers=1)
        metrics = run_training_job(str(tmp_path / "pre"), str(tmp_path / "model"), settings,
                                   client=client, log=lines.append)  # fmt: skip
    assert metrics["n"] == 12  # the val images, evaluated by rank 0
    assert json.loads((tmp_path / "model" / "model.json").read_text())["architecture"] == (
        "small_resnet"
    )
    assert any('"succeeded": 1' in line for line in lines if "Complete" in line)
    assert [r.method for r in k8s.requests][-1] == "DELETE" and not k8s.jobs
