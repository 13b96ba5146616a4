"""Existence checks that commands run before loading a model (a load takes seconds).

Only local paths are checked, and only cheaply: ``s3://`` URIs and globs are left to the
library, which reports them in order with everything else.

    require_paths(["photo.jpg", "photos/*.png"], what="image source")  # NotFoundError if missing
    require_model("runs/cats/model")                                    # ditto, for a MODEL
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from imgrec import storage
from imgrec.errors import NotFoundError

_GLOB_CHARS = re.compile(r"[*?\[]")


def missing_paths(paths: Iterable[str | None]) -> list[str]:
    """The local, glob-free paths among ``paths`` that do not exist."""
    return [
        p
        for p in paths
        if p and not storage.is_s3(p) and not _GLOB_CHARS.search(p) and not os.path.exists(p)
    ]


def require_paths(paths: Iterable[str | None], *, what: str, hint: str = "check the path") -> None:
    """Raise ``NotFoundError`` naming every missing local path (see :func:`missing_paths`)."""
    missing = missing_paths(paths)
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        verb = "does" if len(missing) == 1 else "do"
        raise NotFoundError(f"{what} {shown} {verb} not exist", hint=hint)


def model_path(model: str) -> str | None:
    """The local path a MODEL argument names, or ``None`` for a pretrained name or ``s3://``.

    ``runs/x/model`` and ``store@production`` / ``store@3`` are paths; ``resnet18`` is a name.
    """
    if storage.is_s3(model):
        return None
    base, _, selector = model.rpartition("@")
    if base and (selector == "production" or selector.isdigit()):
        return base  # a model store
    looks_like_path = os.sep in model or "/" in model or model.startswith(".")
    return model if looks_like_path or os.path.exists(model) else None


def require_model(model: str) -> None:
    """Raise ``NotFoundError`` when MODEL names a local model directory or store that is missing."""
    require_paths(
        [model_path(model)],
        what="model",
        hint="pass a model directory, STORE@production, or a name from `imgrec architectures`",
    )
