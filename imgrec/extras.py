"""The optional extras of ``pyproject.toml`` and the imports that need them.

The core (data, models, training, evaluation, predict, export to ONNX) installs with
``pip install imgrec``; the heavy parts come with an extra::

    pip install 'imgrec[serve]'      # imgrec serve, the TorchServe .mar (kserve, torchserve)
    pip install 'imgrec[pipelines]'  # imgrec pipeline (kfp, Great Expectations, step runners)
    pip install 'imgrec[monitor]'    # imgrec monitor (Evidently)
    pip install 'imgrec[openvino]'   # --precision bf16 (OpenVINO)
    pip install 'imgrec[all]'        # all four (what `make install` and the image install)

:func:`missing_extra` turns the ``ModuleNotFoundError`` of a missing one into
:class:`~imgrec.errors.MissingExtraError`, which the CLI prints as one line.
"""

from __future__ import annotations

from imgrec.errors import MissingExtraError

# extra -> the top-level import names its distributions provide (``kubernetes`` comes with both
# serve and pipelines; the first extra that lists a name is the one named in the hint)
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("kserve", "ts", "model_archiver"),
    "pipelines": (
        "kfp",
        "kubeflow",
        "kubeflow_trainer_api",
        "great_expectations",
        "docker",
        "kubernetes",
    ),
    "monitor": ("evidently",),
    "openvino": ("openvino",),
}


def extra_for(module: str) -> str | None:
    """The extra that installs ``module`` (a dotted import name), or None for a core one."""
    top = module.split(".")[0]
    return next((extra for extra, names in EXTRAS.items() if top in names), None)


def missing_extra(exc: ModuleNotFoundError) -> MissingExtraError | None:
    """The typed error for ``exc`` when the missing module belongs to an extra, else None."""
    extra = extra_for(exc.name or "")
    if extra is None:
        return None
    return MissingExtraError(
        f"this needs the optional extra '{extra}' (module {exc.name!r} is not installed)",
        hint=f"pip install 'imgrec[{extra}]'",
    )
