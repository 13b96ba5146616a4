"""Kubeflow Pipelines components: one per pipeline step, thin typed wrappers over ``imgrec``.

Every step module defines a plain function whose body imports ``imgrec`` (it runs inside the
component image, where imgrec is installed) and calls :mod:`imgrec.mlops.steps`. The functions
become KFP v2 lightweight components with :func:`build_components`, which applies
``dsl.component(base_image=IMAGE)`` to each, so one setting picks the image for all of them::

    from components import build_components
    ops = build_components("registry.example.com/imgrec:0.1.0-cuda")
    ops["train"](data=..., device="cuda")

``IMGREC_COMPONENT_IMAGE`` (environment) overrides the default image
:data:`DEFAULT_IMAGE`; ``imgrec pipeline compile --image`` sets it per compile. ``deploy``
runs after ``register`` when the ``deploy_target`` parameter is ``local`` or ``cluster``.
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT_IMAGE = "ghcr.io/imgrec/imgrec:0.1.0"
"""The component image (see ``Dockerfile``); the CUDA build is tagged ``0.1.0-cuda``."""


def component_image() -> str:
    """The configured image: ``IMGREC_COMPONENT_IMAGE`` or :data:`DEFAULT_IMAGE`."""
    return os.environ.get("IMGREC_COMPONENT_IMAGE", "").strip() or DEFAULT_IMAGE


def build_components(image: str | None = None) -> dict[str, Any]:
    """Every step as a KFP component using ``image``: ``{name: component}``."""
    from kfp import dsl

    from components.deploy import deploy
    from components.evaluate import evaluate
    from components.gate import gate
    from components.ingest import ingest
    from components.monitor import monitor
    from components.preprocess import preprocess
    from components.register import not_registered, register
    from components.train import train
    from components.train_job import train_on_cluster
    from components.validate import validate

    base = image or component_image()
    funcs = (ingest, validate, preprocess, train, train_on_cluster, evaluate, gate, register,
             not_registered, deploy, monitor)  # fmt: skip
    # packages_to_install stays empty: imgrec and kfp are in the image (and in the local venv).
    return {f.__name__: dsl.component(f, base_image=base, install_kfp_package=False) for f in funcs}
