"""Contract tests over the DETECTORS registry: each builds, trains a step, predicts."""

from __future__ import annotations

import pytest
import torch

from imgrec.errors import UnknownNameError, WeightsUnavailableError
from imgrec.models.detectors import DETECTORS, build_detector

SIZE = 128


def _batch() -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    torch.manual_seed(0)
    images = torch.randn(2, 3, SIZE, SIZE)
    targets = [
        {
            "boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0], [70.0, 20.0, 110.0, 90.0]]),
            "labels": torch.tensor([0, 2]),
        },
        {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64)},  # no objects
    ]
    return images, targets


# the ResNet-50 torchvision models take tens of seconds on 2 busy cores
NAMES = [
    pytest.param(n, marks=pytest.mark.slow) if "resnet50" in n else n for n in DETECTORS.names()
]


@pytest.mark.parametrize("name", NAMES)
def test_every_detector_trains_a_step_and_predicts(name) -> None:
    kw = {"backbone": "efficientnet_lite0"} if DETECTORS.get(name).backbone_choice else {}
    det = build_detector(name, 3, pretrained=False, image_size=SIZE, **kw)
    images, targets = _batch()
    losses = det.loss(images, targets)
    total = sum(losses.values())
    assert isinstance(total, torch.Tensor) and torch.isfinite(total)
    total.backward()
    assert any(p.grad is not None for p in det.parameters())
    out = det.predict(images)
    assert len(out) == 2
    for o in out:
        assert o["boxes"].shape[1:] == (4,) and len(o["boxes"]) == len(o["scores"]) == len(
            o["labels"]
        )
        assert ((o["labels"] >= 0) & (o["labels"] < 3)).all()  # no background class leaks out


def test_default_detector_uses_offline_imagenet_backbone_and_freezes_it() -> None:
    det = build_detector("fcos", 2, pretrained=True, image_size=SIZE, freeze_stages=5)
    body = det.net.backbone.body
    assert not any(p.requires_grad for n, p in body.named_parameters() if n.startswith("blocks.4"))
    assert all(p.requires_grad for n, p in body.named_parameters() if n.startswith("blocks.6"))
    # the same numbers as the classifier registry's offline EfficientNet-Lite0
    from imgrec.models.architectures import build_model

    ref = build_model("efficientnet_lite0", num_classes=1000, pretrained=True).state_dict()
    torch.testing.assert_close(body.state_dict()["conv_stem.weight"], ref["conv_stem.weight"])


def test_coco_weights_offline_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing cached
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # a closed port: no download can work
    with pytest.raises(WeightsUnavailableError, match="offline alternative"):
        build_detector("ssdlite320_mobilenet_v3_large", 3, pretrained="coco")


def test_unknown_detector_suggests_names() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'fcos'"):
        build_detector("fcoss", 3)


@pytest.mark.parametrize("upto", [3, 5, 6, 7])
def test_split_forward_used_for_cached_training_equals_the_full_forward(upto) -> None:
    det = build_detector("fcos", 2, pretrained=True, image_size=SIZE).eval()
    backbone = det.net.backbone
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        full = backbone(x)
        split = backbone.suffix(backbone.prefix(x, upto), upto)
    assert list(full) == list(split)
    for key in full:
        torch.testing.assert_close(split[key], full[key], rtol=1e-4, atol=1e-4)
