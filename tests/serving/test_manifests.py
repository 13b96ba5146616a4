"""Offline validation of manifests/ and of the InferenceService the deploy step would apply.

Core Kubernetes objects go through kubernetes-validate (strict: unknown fields fail). KServe
objects are checked recursively against the kserve SDK's model classes: every field must be
an attribute of the class at that position, with a value of the declared type. Overlays are
rendered by imgrec.gitops.kustomize (equal to `kubectl kustomize`, tests/gitops) and validated.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

import imgrec.serving._kserve  # noqa: F401  (imports kserve without letting it parse sys.argv)
from imgrec.gitops.kustomize import read_worktree, render
from imgrec.serving.deploy import inference_service, to_manifest

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
K8S_VERSION = "1.37.0"
KSERVE_KINDS = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
}
PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "bool": (bool,), "float": (int, float), "object": (object,),
}  # fmt: skip


def _sdk_class(name: str) -> Any:
    from kserve import models as kserve_models
    from kubernetes.client import models as k8s_models

    for module in (kserve_models, k8s_models):
        if hasattr(module, name):
            return getattr(module, name)
    raise AssertionError(f"no SDK class {name}")


def check_fields(value: Any, type_name: str, path: str = "") -> list[str]:
    """Problems found checking ``value`` against SDK type ``type_name`` (empty = valid)."""
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [
            p for i, v in enumerate(value) for p in check_fields(v, type_name[5:-1], f"{path}[{i}]")
        ]
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            return [f"{path}: expected a map"]
        inner = type_name[5:-1].split(", ", 1)[1]
        return [p for k, v in value.items() for p in check_fields(v, inner, f"{path}.{k}")]
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name]) and not (
            type_name in ("int", "float") and isinstance(value, bool)
        )
        return [] if ok else [f"{path}: expected {type_name}, got {value!r}"]
    cls = _sdk_class(type_name)
    if not isinstance(value, dict):
        return [f"{path}: expected an object ({type_name})"]
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    problems = []
    for key, item in value.items():
        if key not in by_json:
            problems.append(f"{path}.{key}: unknown field for {type_name}")
            continue
        problems += check_fields(item, cls.openapi_types[by_json[key]], f"{path}.{key}")
    return problems


def validate_object(doc: dict[str, Any]) -> list[str]:
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in KSERVE_KINDS:
        return check_fields(doc, KSERVE_KINDS[key], doc["kind"])
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{doc.get('kind')}: {exc.message}"]
    return []


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("folder", ["base", "overlays/local", "overlays/production"])
def test_manifests_validate(folder: str) -> None:
    docs = render(f"manifests/{folder}", read_worktree(MANIFESTS.parent))
    kinds = {d["kind"] for d in docs}
    assert {"InferenceService", "ClusterServingRuntime", "Secret", "Deployment"} <= kinds
    problems = [p for d in docs for p in validate_object(d)]
    assert not problems, problems
    isvcs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "InferenceService"}
    assert set(isvcs) == {"imgrec", "imgrec-torchserve"}
    for isvc in isvcs.values():
        model = isvc["spec"]["predictor"]["model"]
        assert model["storageUri"].startswith("s3://")
        assert isvc["spec"]["predictor"]["logger"]["mode"] == "all"
        assert model["resources"]["limits"]["cpu"]
    custom = isvcs["imgrec"]["spec"]["predictor"]["model"]
    assert custom["readinessProbe"]["httpGet"]["path"] == "/v2/models/imgrec/ready"
    assert custom["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"


def test_checker_rejects_unknown_and_mistyped_fields() -> None:
    [isvc] = load_docs(MANIFESTS / "base/inferenceservice.yaml")
    bad = copy.deepcopy(isvc)
    bad["spec"]["predictor"]["model"]["storageURI"] = "s3://typo"
    bad["spec"]["predictor"]["minReplicas"] = "one"
    problems = validate_object(bad)
    assert any("storageURI: unknown field" in p for p in problems)
    assert any("minReplicas: expected int" in p for p in problems)
    bad_deploy = load_docs(MANIFESTS / "base/payload-logger.yaml")[0]
    bad_deploy["spec"]["replicas"] = "x"
    assert validate_object(bad_deploy)


@pytest.mark.parametrize("runtime", ["kserve", "torchserve"])
def test_deploy_step_object_validates(runtime: str) -> None:
    obj = to_manifest(inference_service("imgrec", "s3://bucket/store/versions/0003/model",
                                        runtime=runtime))  # fmt: skip
    assert obj["kind"] == "InferenceService"
    assert obj["spec"]["predictor"]["model"]["storageUri"].endswith("0003/model")
    assert not validate_object(obj)
