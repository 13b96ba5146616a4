"""The feature-cache key separates what changes the features."""

from __future__ import annotations

from imgrec.engine.feature_cache import FEATURE_CACHE_VERSION, feature_key


def test_feature_key_is_stable_and_separates_device_and_version() -> None:
    base = {"arch": "efficientnet_lite0", "weights": "pretrained", "split": "train"}
    assert feature_key(**base, device="cpu") == feature_key(**base, device="cpu")
    assert feature_key(**base, device="cpu") != feature_key(**base, device="cuda")
    assert FEATURE_CACHE_VERSION >= 2  # bumped for the one-step resize + center crop
    val = {**base, "split": "val"}
    assert feature_key(**base, device="cpu") != feature_key(**val, device="cpu")
