"""MLOps steps behind the Kubeflow pipeline: ingest, validate, preprocess, gate, and the local run.

Each step is a plain function usable from Python; ``components/`` wraps them for Kubeflow and
``run_local`` runs the whole pipeline on this machine with kfp's local runner::

    from imgrec.mlops import run_local

    summary = run_local("data/mnist5k", "model-store", {"epochs": 3})
    summary["gate"]["passed"], summary["registered_version"]
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_local"]


def run_local(
    data: str, store: str, params: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Run the training pipeline locally; see :func:`imgrec.mlops.local_run.run_local`."""
    from imgrec.mlops.local_run import run_local as _run_local

    return _run_local(data, store, params, **kwargs)
