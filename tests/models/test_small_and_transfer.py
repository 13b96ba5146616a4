"""small_resnet specifics, freeze parsing, frozen-BN train mode, and the architectures CLI."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from imgrec.errors import ConfigError
from imgrec.models import ARCHITECTURES, build_model
from imgrec.models.small import SmallResNet
from imgrec.models.transfer import (
    FreezeSpec,
    features,
    freeze,
    head,
    parse_freeze,
    train_mode,
    trainable_parameters,
)


@pytest.mark.parametrize("size", [16, 28, 32, 64])
def test_small_resnet_any_small_size_and_channels_last(size: int) -> None:
    torch.manual_seed(0)
    net = SmallResNet(10).eval()
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        ref = net(x)
        cl = net.to(memory_format=torch.channels_last)(
            x.contiguous(memory_format=torch.channels_last)
        )
    assert ref.shape == (3, 10)
    torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-4)


def test_small_resnet_is_lean_and_configurable() -> None:
    assert ARCHITECTURES.get("small_resnet").params < 1_000_000
    net = build_model("small_resnet", 4, stem_width=8, widths=[8, 16, 32, 64], depths=[1, 2, 1, 1])
    assert features(net, torch.randn(2, 3, 32, 32)).shape == (2, 64)
    with pytest.raises(ValueError, match="same length"):
        SmallResNet(3, widths=(8, 16), depths=(1,))


def test_small_resnet_learns_a_separable_task() -> None:
    # bright-left vs bright-right 28 px images: a real (tiny) optimisation must solve it
    torch.manual_seed(0)
    x = torch.rand(64, 3, 28, 28) * 0.2
    y = torch.arange(64) % 2
    x[y == 0, :, :, :14] += 0.8
    x[y == 1, :, :, 14:] += 0.8
    net = SmallResNet(2, stem_width=8, widths=(8, 16), depths=(1, 1))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(30):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        assert (net(x).argmax(1) == y).float().mean() == 1.0


@pytest.mark.parametrize(
    ("value", "spec"),
    [
        ("backbone", FreezeSpec("backbone")),
        ("none", FreezeSpec("none")),
        (None, FreezeSpec("none")),
        (True, FreezeSpec("backbone")),
        ("first:2", FreezeSpec("first", 2)),
        ("2", FreezeSpec("first", 2)),
        (3, FreezeSpec("first", 3)),
        (" Backbone ", FreezeSpec("backbone")),
    ],
)
def test_parse_freeze(value: object, spec: FreezeSpec) -> None:
    assert parse_freeze(value) == spec  # type: ignore[arg-type]
    assert parse_freeze(str(spec)) == spec


@pytest.mark.parametrize("value", ["all", "first:x", "-1", "head"])
def test_parse_freeze_rejects_nonsense(value: str) -> None:
    with pytest.raises(ConfigError, match="invalid freeze value"):
        parse_freeze(value)


def test_freeze_too_many_stages_is_a_config_error() -> None:
    net = SmallResNet(3, stem_width=8, widths=(8, 16), depths=(1, 1))
    with pytest.raises(ConfigError, match="only 2 stages"):
        freeze(net, "first:5")


def test_frozen_backbone_keeps_bn_statistics_and_trains_the_head() -> None:
    torch.manual_seed(0)
    net = SmallResNet(3, stem_width=8, widths=(8, 16), depths=(1, 1))
    freeze(net, "backbone")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(trainable_parameters(net), lr=0.1)
    train_mode(net)
    assert not net.stem[1].training and net.training
    loss = F.cross_entropy(net(torch.randn(8, 3, 28, 28) * 3 + 1), torch.arange(8) % 3)
    loss.backward()
    opt.step()
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"fc.weight", "fc.bias"}
    assert head(net) is net.fc


def test_architectures_cli_json() -> None:
    import imgrec.cli.architectures  # noqa: F401  (registers the command)
    from imgrec.cli.app import app

    result = CliRunner().invoke(app, ["architectures", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    lite = rows["efficientnet_lite0"]
    assert lite["pretrained"] == "offline" and lite["input_size"] == 224
    assert 3.0 < lite["params_m"] < 6.0
    assert rows["vgg16"]["source"] == "torchvision" and rows["resnet18"]["source"] == "timm"
    assert rows["small_resnet"]["pretrained"] == "none"
    text = CliRunner().invoke(app, ["architectures"])
    assert text.exit_code == 0 and "inception_v3" in text.output and "offline" in text.output
