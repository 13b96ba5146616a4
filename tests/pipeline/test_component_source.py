"""A component module edited on disk after import (a merge in the same working tree while a
test session or `make run` keeps running): kfp ships the text at the function's *old* line,
so its step ran another function's body or none ("module 'ephemeral_component' has no
attribute 'not_registered'"). ``components.current_function`` rebuilds it from the file."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl

from imgrec.components import build_components, current_function

BEFORE = """
def register(x: int) -> int:
    return x + 1


def not_registered(reason: str) -> int:
    return 0
"""
AFTER = BEFORE.replace("    return x + 1", "    y = x + 1\n    y += 0\n    return y")


def _shipped(func: Any) -> str:
    """The Python text kfp ships for ``func``'s step."""
    spec = dsl.component(func, install_kfp_package=False).component_spec
    return str(spec.implementation.container.command[-1])


def test_a_component_file_changed_after_import_is_rebuilt_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "edited_steps.py").write_text(BEFORE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("edited_steps")
    stale = module.not_registered
    assert current_function(stale) is stale  # unchanged file: the function itself
    (tmp_path / "edited_steps.py").write_text(AFTER)  # lines shift under the running process
    assert "def not_registered" not in _shipped(stale)  # what kfp alone would ship
    fresh = current_function(stale)
    assert "def not_registered(reason: str)" in _shipped(fresh)
    sys.modules.pop("edited_steps", None)


def test_every_pipeline_component_ships_its_own_function() -> None:
    for name, component in build_components().items():
        source = component.component_spec.implementation.container.command[-1]
        assert f"def {name}(" in source, name
