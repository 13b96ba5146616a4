"""train_mode=pytorchjob: the compiled pipeline's PyTorchJob, and the create/wait calls against
a loopback server speaking the Kubernetes API (``k8s_api_server.py``)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from k8s_api_server import K8sApiServer

from imgrec import storage
from imgrec.errors import ConfigError, TrainingJobError
from imgrec.mlops.train_job import JOB_MODULE, JobSettings, pytorchjob, run_training_job
from imgrec.pipelines.training import ClusterSettings, Toleration, compile_pipeline

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/imgrec:1.2.3-cuda"


def _serialized(job: object) -> dict:
    from kubeflow.training import ApiClient

    return ApiClient().sanitize_for_serialization(job)


def test_compiled_pipeline_creates_a_complete_pytorchjob(tmp_path: Path) -> None:
    from kfp import components

    cluster = ClusterSettings(
        cpu="8", memory="32G", accelerator="nvidia.com/gpu", gpus=2,
        tolerations=(Toleration(key="nvidia.com/gpu", operator="Exists"),),
        train_mode="pytorchjob", workers=3, job_staging_uri="s3://ml/imgrec-jobs",
        job_namespace="team-a", job_timeout_s=7200,
    )  # fmt: skip
    path = compile_pipeline(str(tmp_path / "job.yaml"), cluster, IMAGE)
    components.load_component_from_file(path)  # the SDK reads (validates) the compiled IR
    spec = yaml.safe_load(Path(path).read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert "train-on-cluster" in tasks and "train" not in tasks
    executor = spec["deploymentSpec"]["executors"]["exec-train-on-cluster"]["container"]
    assert executor["image"] == IMAGE
    given = tasks["train-on-cluster"]["inputs"]["parameters"]["job_settings"]
    settings = JobSettings(**json.loads(given["runtimeValue"]["constant"]))

    job = _serialized(pytorchjob("imgrec-train-x", ["python", "-m", JOB_MODULE], settings))
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "PyTorchJob"
    assert job["metadata"]["namespace"] == "team-a"
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert {k: v["replicas"] for k, v in replicas.items()} == {"Master": 1, "Worker": 2}
    for replica in replicas.values():
        assert replica["restartPolicy"] == "OnFailure"
        pod = replica["template"]["spec"]
        (container,) = pod["containers"]
        assert container["name"] == "pytorch" and container["image"] == IMAGE
        wanted = {"cpu": "8", "memory": "32G", "nvidia.com/gpu": "2"}
        assert container["resources"] == {"limits": wanted, "requests": wanted}
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                       "effect": "NoSchedule"}]  # fmt: skip
    policy = job["spec"]["runPolicy"]
    assert policy == {"cleanPodPolicy": "Running", "ttlSecondsAfterFinished": 3600,
                      "backoffLimit": 3, "activeDeadlineSeconds": 7200}  # fmt: skip


def test_the_job_command_is_the_train_step_under_torchrun() -> None:
    from imgrec.mlops.train_job import job_command

    settings = JobSettings(image=IMAGE, staging_uri="s3://b/p", gpus_per_worker=4)
    command = job_command("s3://b/p/j/data", "s3://b/p/j", settings)
    assert command[:3] == ["python", "-m", "torch.distributed.run"]
    assert "--nnodes=$(WORLD_SIZE)" in command and "--node-rank=$(RANK)" in command
    assert "--nproc-per-node=4" in command
    assert command[command.index("-m", 3) + 1] == JOB_MODULE


def test_pytorchjob_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="not an s3:// prefix"):
        ClusterSettings(train_mode="pytorchjob")  # fine alone; the compile needs staging
        JobSettings(image=IMAGE, staging_uri="/local/folder")
    with pytest.raises(ConfigError, match="unknown train_mode"):
        ClusterSettings(train_mode="mpijob")


def _settings(bucket: str, **kw: object) -> JobSettings:
    base = {"image": IMAGE, "staging_uri": f"s3://{bucket}/jobs", "namespace": "ml",
            "poll_s": 0.05, "timeout_s": 60}  # fmt: skip
    return JobSettings(**{**base, **kw})  # type: ignore[arg-type]


def _data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def test_a_failed_job_is_an_error_with_its_state_in_the_log(
    tmp_path: Path, make_bucket, s3_server: str
) -> None:
    def operator(namespace: str, name: str, job: dict) -> None:
        for state in ("Created", "Running"):
            time.sleep(0.2)
            k8s.set_state(namespace, name, state)
        time.sleep(0.2)
        k8s.set_state(namespace, name, "Failed", "Master-0 OOMKilled")

    lines: list[str] = []
    settings = _settings(make_bucket())
    with (
        K8sApiServer(operator) as k8s,
        pytest.raises(TrainingJobError, match="failed: Master-0 OOMKilled") as err,
    ):
        run_training_job(str(_data_dir(tmp_path)), str(tmp_path / "model"), settings,
                         client=k8s.training_client("ml"), log=lines.append)  # fmt: skip
    assert "training.kubeflow.org/job-name=" in err.value.hint
    post = k8s.requests[0]
    assert post.method == "POST" and post.path == "/apis/kubeflow.org/v1/namespaces/ml/pytorchjobs"
    name = post.body["metadata"]["name"]
    assert re.fullmatch(r"imgrec-train-[0-9a-f]{8}", name)
    # the body is the SDK object the step built, and the data went to its staging folder
    command = post.body["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"][
        "containers"][0]["command"]  # fmt: skip
    assert _serialized(pytorchjob(name, command, settings)) == post.body
    assert storage.exists(f"s3://{settings.staging_uri[5:]}/{name}/data/config.json")
    states = [line.split(": ")[1].split()[0] for line in lines if line.startswith("pytorchjob")]
    assert states[-1] == "Failed" and "Running" in states
    assert len(states) == len(set(states))  # each change once, not each poll
    assert all(r.method in ("POST", "GET") for r in k8s.requests)


def test_a_job_past_its_timeout_is_deleted(tmp_path: Path, make_bucket, s3_server: str) -> None:
    def operator(namespace: str, name: str, job: dict) -> None:
        k8s.set_state(namespace, name, "Running")

    settings = _settings(make_bucket(), timeout_s=1)
    with (
        K8sApiServer(operator) as k8s,
        pytest.raises(TrainingJobError, match="did not finish within 1 s"),
    ):
        run_training_job(str(_data_dir(tmp_path)), str(tmp_path / "model"), settings,
                         client=k8s.training_client("ml"), log=lambda line: None)  # fmt: skip
    assert k8s.requests[-1].method == "DELETE"
    assert k8s.requests[-1].path.startswith("/apis/kubeflow.org/v1/namespaces/ml/pytorchjobs/")
    assert not k8s.jobs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_the_job_trains_and_its_model_is_the_steps_output(
    tmp_path: Path, make_bucket, s3_server: str
) -> None:
    """The operator here runs the job's real command (one node, 2 processes) on this machine."""
    sys.path.insert(0, str(ROOT / "tests" / "engine"))
    from train_fixtures import make_imagefolder

    from imgrec.mlops.steps import ingest_step, preprocess_step

    make_imagefolder(tmp_path / "images", n_train=12, n_val=4)
    ingest_step(str(tmp_path / "images"), str(tmp_path / "manifest"))
    preprocess_step(str(tmp_path / "manifest"), str(tmp_path / "pre"), model="small_resnet",
                    epochs=2, overrides="batch_size=8,threads=1,report=false")  # fmt: skip

    def operator(namespace: str, name: str, job: dict) -> None:
        container = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"][
            "containers"][0]  # fmt: skip
        env = {"WORLD_SIZE": "1", "RANK": "0", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(_free_port())}  # fmt: skip
        command = [
            re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in container["command"]
        ]
        command = [sys.executable if a == "python" else a for a in command]
        command[command.index("--nproc-per-node=1")] = "--nproc-per-node=2"
        k8s.set_state(namespace, name, "Running")
        pythonpath = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        done = subprocess.run(command, env={**os.environ, "PYTHONPATH": pythonpath},
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        k8s.set_state(namespace, name, "Succeeded" if done.returncode == 0 else "Failed",
                      done.stderr[-2000:])  # fmt: skip

    settings = _settings(make_bucket(), timeout_s=600)
    lines: list[str] = []
    with K8sApiServer(operator) as k8s:
        metrics = run_training_job(
            str(tmp_path / "pre"), str(tmp_path / "model"), settings,
            client=k8s.training_client("ml"), log=lines.append,
        )  # fmt: skip
    assert 0.0 <= metrics["accuracy"] <= 1.0
    card = json.loads((tmp_path / "model" / "model.json").read_text())
    assert card["architecture"] == "small_resnet"
    assert any("Succeeded" in line for line in lines)
