"""Contract tests parametrized over the architecture registry: every entry builds without
weights, runs forward and backward at a small valid size, exposes features / head / stage groups,
and carries its metadata."""

from __future__ import annotations

import pytest
import torch

from imgrec.errors import UnknownNameError
from imgrec.models import ARCHITECTURES, build_model
from imgrec.models.transfer import feature_dim, features, freeze, head, set_head, stage_groups

REQUIRED = {
    "resnet18", "resnet50", "vgg11_bn", "vgg16", "inception_v3", "efficientnet_b0",
    "efficientnet_lite0", "mobilenetv3_small_100", "mobilenetv3_large_100", "convnext_tiny",
    "vit_tiny_patch16_224", "vit_base_patch16_224", "small_resnet",
}  # fmt: skip
BIG = {"vgg11_bn", "vgg16", "vit_base_patch16_224", "resnet50", "convnext_tiny", "inception_v3"}
NAMES = [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in ARCHITECTURES]


def _small_build(name: str, num_classes: int = 3) -> tuple[torch.nn.Module, int]:
    spec = ARCHITECTURES.get(name)
    size = max(spec.min_input_size, 32)
    kw = spec.size_kwargs(size)
    torch.manual_seed(0)
    return build_model(name, num_classes, pretrained=False, **kw), size


def test_registry_holds_the_required_architectures() -> None:
    assert set(ARCHITECTURES.names()) >= REQUIRED
    sources = {ARCHITECTURES.get(n).source for n in ARCHITECTURES}
    assert sources == {"timm", "torchvision", "imgrec"}


def test_unknown_architecture_suggests_close_names() -> None:
    with pytest.raises(UnknownNameError, match="resnet18") as info:
        build_model("resnet81", 3)
    assert "imgrec architectures" in info.value.hint


@pytest.mark.parametrize("name", NAMES)
def test_metadata(name: str) -> None:
    spec = ARCHITECTURES.get(name)
    assert spec.name == name and spec.family and spec.source in {"timm", "torchvision", "imgrec"}
    assert 8 <= spec.min_input_size <= spec.input_size
    assert spec.params > 100_000
    assert spec.feature_dim > 0
    assert spec.pretrained_availability in {"offline", "download", "none"}
    pre = spec.default_preprocessing()
    assert pre.input_size == spec.input_size and pre.resize_size >= pre.input_size
    assert spec.default_preprocessing(64).input_size == 64


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_features_and_head(name: str) -> None:
    net, size = _small_build(name)
    x = torch.randn(2, 3, size, size)
    net.train()
    logits = net(x)
    assert logits.shape == (2, 3)  # one output type in train mode too
    logits.sum().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)

    net.eval()
    with torch.no_grad():
        feats = features(net, x)
        assert feats.shape == (2, feature_dim(net))
        assert feature_dim(net) == ARCHITECTURES.get(name).feature_dim
        # the frozen-backbone fast path must equal the full forward pass
        torch.testing.assert_close(head(net)(feats), net(x), rtol=1e-4, atol=1e-4)

    _check_freeze_modes(net)

    new_head = set_head(net, 5)
    assert new_head is head(net)
    with torch.no_grad():
        assert net.eval()(x).shape == (2, 5)


def _check_freeze_modes(net: torch.nn.Module) -> None:
    head_ids = {id(p) for p in head(net).parameters()}
    frozen = freeze(net, "backbone")
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert frozen and {id(p) for p in trainable} == head_ids

    groups = stage_groups(net)
    assert len(groups) >= 3  # stem + at least two stages
    frozen = freeze(net, "first:1")
    assert frozen == groups[0] + groups[1]
    assert any(p.requires_grad for n, p in net.named_parameters() if n in groups[-1])
    assert freeze(net, "none") == [] and all(p.requires_grad for p in net.parameters())
