"""The name registries every extension point uses (architectures, presets, formats...)."""

from __future__ import annotations

import pytest

from imgrec.errors import UnknownNameError
from imgrec.registry import Registry


def test_replace_swaps_a_registered_object_and_never_adds_a_name() -> None:
    presets: Registry[int] = Registry("preset")
    presets.add("light", 1)
    assert presets.replace("light", 2) == 1 and presets.get("light") == 2
    with pytest.raises(UnknownNameError, match="unknown preset 'lihgt'; did you mean 'light'"):
        presets.replace("lihgt", 3)
    assert presets.names() == ["light"]
    with pytest.raises(ValueError, match="duplicate preset name 'light'"):
        presets.add("light", 4)
