"""The compiled pipeline YAML: deterministic, up to date, every input and output typed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imgrec.pipelines.training import (
    ClusterSettings,
    Toleration,
    committed_variants,
    compile_pipeline,
)

ROOT = Path(__file__).resolve().parents[2]
STEPS = {"ingest", "validate", "preprocess", "train", "evaluate", "gate", "register"}
# Typed artifacts the Kubeflow UI renders; a bare system.Artifact would be untyped.
ARTIFACT_TYPES = {
    "system.Dataset",
    "system.Model",
    "system.Metrics",
    "system.ClassificationMetrics",
    "system.HTML",
    "system.Markdown",
}


@pytest.fixture(autouse=True)
def _default_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMGREC_COMPONENT_IMAGE", raising=False)


@pytest.mark.parametrize("name", sorted(committed_variants()))
def test_committed_yaml_is_deterministic_and_up_to_date(tmp_path: Path, name: str) -> None:
    cluster, image = committed_variants()[name]
    first = Path(compile_pipeline(str(tmp_path / "a.yaml"), cluster, image)).read_text()
    second = Path(compile_pipeline(str(tmp_path / "b.yaml"), cluster, image)).read_text()
    assert first == second, "compiling twice gave different YAML"
    committed = (ROOT / "pipelines" / name).read_text()
    assert committed == first, (
        f"pipelines/{name} is stale: run `python -m imgrec.pipelines.training` and commit it"
    )


def _docs(name: str) -> list[dict]:
    return list(yaml.safe_load_all((ROOT / "pipelines" / name).read_text()))


def _check_io(owner: str, definitions: dict) -> None:
    for pname, spec in (definitions.get("parameters") or {}).items():
        assert spec.get("parameterType"), f"{owner}: parameter {pname} has no type"
    for aname, spec in (definitions.get("artifacts") or {}).items():
        title = spec["artifactType"]["schemaTitle"]
        assert title in ARTIFACT_TYPES, f"{owner}: artifact {aname} is {title}"


def test_every_component_input_and_output_is_typed() -> None:
    spec = _docs("training.yaml")[0]
    components = spec["components"]
    names = {k.removeprefix("comp-") for k in components}
    assert names >= STEPS
    for key, comp in components.items():
        _check_io(key, comp.get("inputDefinitions", {}))
        _check_io(key, comp.get("outputDefinitions", {}))
    _check_io("root", spec["root"]["inputDefinitions"])
    params = spec["root"]["inputDefinitions"]["parameters"]
    wanted = [
        "data_uri",
        "store_uri",
        "architecture",
        "epochs",
        "img_size",
        "gate_metric",
        "gate_min_improvement",
        "gate_max_class_regression",
        "max_unreadable_fraction",
    ]
    assert set(wanted) <= set(params)
    executors = spec["deploymentSpec"]["executors"]
    for key, ex in executors.items():
        assert ex["container"]["image"] == "ghcr.io/imgrec/imgrec:0.1.0", key
        assert "pip install" not in " ".join(ex["container"]["command"]), key


def test_register_and_deploy_only_run_when_the_gate_passes() -> None:
    spec = _docs("training.yaml")[0]
    branches = {}  # condition -> the tasks of the branch it guards
    for comp in spec["components"].values():
        for task in comp.get("dag", {}).get("tasks", {}).values():
            cond = task.get("triggerPolicy", {}).get("condition")
            if cond:
                inner = spec["components"][task["componentRef"]["name"]]["dag"]["tasks"]
                branches[" ".join(cond.split())] = set(inner)
    gate = "inputs.parameter_values['pipelinechannel--gate-passed'] == true"
    deploy = "inputs.parameter_values['pipelinechannel--deploy_target'] != 'none'"
    assert branches[f"!({gate})"] == {"not-registered"}
    # deploy sits inside the gate-passed branch, behind its own deploy_target condition
    assert branches[deploy] == {"deploy"}
    (nested,) = branches[gate] - {"register"}
    assert nested.startswith("condition-") and len(branches) == 3


def test_train_requests_resources_on_the_cluster(tmp_path: Path) -> None:
    docs = _docs("training-gpu.yaml")
    train = docs[0]["deploymentSpec"]["executors"]["exec-train"]["container"]
    assert train["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert train["resources"]["accelerator"]["resourceCount"] == "1"
    assert train["resources"]["resourceCpuLimit"] == "8"
    k8s = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert k8s["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    assert k8s["tolerations"][0]["key"] == "nvidia.com/gpu"
    # Custom settings from the command line reach the YAML.
    custom = ClusterSettings(
        cpu="2",
        memory="4G",
        node_selector=(("pool", "training"),),
        tolerations=(Toleration.parse("dedicated=ml:NoExecute"),),
    )
    out = yaml.safe_load_all(Path(compile_pipeline(str(tmp_path / "c.yaml"), custom)).read_text())
    spec, platform = list(out)
    res = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert res["resourceMemoryLimit"] == "4G" and "accelerator" not in res
    tol = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert tol["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute"}
    ]
    # Only train asks for resources.
    others = spec["deploymentSpec"]["executors"]
    assert all("resources" not in v["container"] for k, v in others.items() if k != "exec-train")
