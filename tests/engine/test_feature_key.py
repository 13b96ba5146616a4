"""The feature-cache key separates what changes the features."""

from __future__ import annotations

import pytest

from imgrec.engine import feature_cache
from imgrec.engine.feature_cache import feature_key


def test_feature_key_is_stable_and_separates_device_and_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = {"arch": "efficientnet_lite0", "weights": "pretrained", "split": "train"}
    assert feature_key(**base, device="cpu") == feature_key(**base, device="cpu")
    assert feature_key(**base, device="cpu") != feature_key(**base, device="cuda")
    before = feature_key(**base, device="cpu")
    monkeypatch.setattr(
        feature_cache, "FEATURE_CACHE_VERSION", feature_cache.FEATURE_CACHE_VERSION + 1
    )
    assert feature_key(**base, device="cpu") != before  # a version bump retires old caches
    val = {**base, "split": "val"}
    assert feature_key(**base, device="cpu") != feature_key(**val, device="cpu")
