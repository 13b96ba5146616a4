"""Kubeflow Pipelines components: one per pipeline step, thin typed wrappers over ``imgrec``.

Every step module defines a plain function whose body imports ``imgrec`` (it runs inside the
component image, where imgrec is installed) and calls :mod:`imgrec.mlops.steps`. The functions
become KFP v2 lightweight components with :func:`build_components`, which applies
``dsl.component(base_image=IMAGE)`` to each, so one setting picks the image for all of them::

    from imgrec.components import build_components
    ops = build_components("registry.example.com/imgrec:0.1.0-cuda")
    ops["train"](data=..., device="cuda")

``IMGREC_COMPONENT_IMAGE`` (environment) overrides the default image
:data:`DEFAULT_IMAGE`; ``imgrec pipeline compile --image`` sets it per compile. ``deploy``
runs after ``register`` when the ``deploy_target`` parameter is ``local`` or ``cluster``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

DEFAULT_IMAGE = "ghcr.io/imgrec/imgrec:0.1.0"
"""The component image (see ``Dockerfile``); the CUDA build is tagged ``0.1.0-cuda``."""


def component_image() -> str:
    """The configured image: ``IMGREC_COMPONENT_IMAGE`` or :data:`DEFAULT_IMAGE`."""
    return os.environ.get("IMGREC_COMPONENT_IMAGE", "").strip() or DEFAULT_IMAGE


def build_components(image: str | None = None) -> dict[str, Any]:
    """Every step as a KFP component using ``image``: ``{name: component}``."""
    from kfp import dsl

    from imgrec.components.deploy import deploy
    from imgrec.components.evaluate import evaluate
    from imgrec.components.gate import gate
    from imgrec.components.ingest import ingest
    from imgrec.components.monitor import monitor
    from imgrec.components.preprocess import preprocess
    from imgrec.components.register import not_registered, register
    from imgrec.components.train import train
    from imgrec.components.train_job import train_on_cluster
    from imgrec.components.validate import validate

    base = image or component_image()
    funcs = (ingest, validate, preprocess, train, train_on_cluster, evaluate, gate, register,
             not_registered, deploy, monitor)  # fmt: skip
    # packages_to_install stays empty: imgrec and kfp are in the image (and in the local venv).
    return {
        f.__name__: dsl.component(current_function(f), base_image=base, install_kfp_package=False)
        for f in funcs
    }


def current_function(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` as its module's file now defines it (re-imported when the file changed).

    kfp ships a lightweight component as the *text* ``inspect.getsource`` finds at the line
    where the function began when its module was imported. When the file changed since (a
    ``git merge``/checkout in the same working tree while a long process -- a test session,
    ``make run``, a server -- keeps running), that line is elsewhere and the step runs
    whatever is there: kfp's ``module 'ephemeral_component' has no attribute
    'not_registered'``, or silently another function's body. The source on disk is compared
    with the imported code; on a difference the module is reloaded, so the component is built
    from, and runs, the file as it is now.
    """
    import importlib
    import inspect
    import linecache
    import sys

    linecache.checkcache(inspect.getsourcefile(func))
    if _source_matches(func):
        return func
    module = importlib.reload(sys.modules[func.__module__])
    return getattr(module, func.__name__)  # type: ignore[no-any-return]


def _source_matches(func: Callable[..., Any]) -> bool:
    """Whether the text ``inspect.getsource`` returns for ``func`` compiles to ``func``'s code."""
    import inspect
    import textwrap

    try:
        tree = compile(textwrap.dedent(inspect.getsource(func)), "<component>", "exec")
    except (OSError, SyntaxError):
        return False
    code = func.__code__  # type: ignore[attr-defined]
    return any(
        getattr(c, "co_name", None) == code.co_name and c.co_code == code.co_code
        for c in tree.co_consts
    )
