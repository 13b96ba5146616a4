"""Detector registry: torchvision FCOS, RetinaNet, Faster R-CNN and SSDlite behind one interface.

Every entry builds a :class:`Detector` whose two methods each return one kind of result
(STYLE 5): ``loss(images, targets) -> dict of losses`` and ``predict(images) -> list of
{"boxes", "scores", "labels"}``. Inputs are normalized ``(3, S, S)`` tensors made by the model
card's preprocessing, so the torchvision detectors' own resize/normalize is switched off.

* ``fcos`` / ``retinanet`` / ``fasterrcnn``: any feature backbone from the classifier registry
  (``ARCHITECTURES``, timm models) with its ImageNet weights (``pretrained=True``; the
  EfficientNet-Lite0 weights ship offline), an FPN of ``fpn_channels`` over strides 8/16/32.
* ``fasterrcnn_resnet50_fpn``, ``fasterrcnn_mobilenet_v3_large_fpn``, ``retinanet_resnet50_fpn``,
  ``fcos_resnet50_fpn``, ``ssdlite320_mobilenet_v3_large``: torchvision's models; with
  ``pretrained="coco"`` they start from COCO weights (a download; offline this raises
  ``WeightsUnavailableError`` naming the offline alternative).
* ``DEFAULT_DETECTOR`` (CPU default): FCOS on EfficientNet-Lite0, 64-channel FPN, 2-conv heads.

::

    det = build_detector("fcos", num_classes=10, backbone="efficientnet_lite0", pretrained=True)
    losses = det.loss(images, [{"boxes": b, "labels": l}])   # labels 0..K-1
    out = det.predict(images)                                # boxes in input pixels
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork

from imgrec.errors import ConfigError, ModelError, WeightsUnavailableError
from imgrec.registry import Registry

DEFAULT_DETECTOR = "fcos"
DEFAULT_BACKBONE = "efficientnet_lite0"
OFFLINE_DETECTOR_HINT = (
    "offline alternative: a detector on an ImageNet backbone shipped with imgrec, e.g. "
    "`--model fcos` (EfficientNet-Lite0 backbone, offline weights)"
)


class TimmFPNBackbone(nn.Module):
    """timm ``features_only`` network (strides 8, 16, 32) + FPN; exposes ``out_channels``."""

    body: Any  # timm EfficientNetFeatures / FeatureListNet (dynamic attributes)

    def __init__(
        self,
        name: str,
        fpn_channels: int,
        pretrained: bool | str,
        freeze_stages: int,
        frozen_bn: bool,
    ) -> None:
        super().__init__()
        import timm
        from timm.layers import freeze_batch_norm_2d

        from imgrec.models.architectures import build_model

        self.body = timm.create_model(
            name, features_only=True, out_indices=(2, 3, 4), pretrained=False
        )
        if pretrained:
            # the classifier registry knows where ImageNet weights come from (offline or download)
            classifier = build_model(name, num_classes=1000, pretrained=pretrained)
            missing, _ = self.body.load_state_dict(classifier.state_dict(), strict=False)
            if missing:
                raise ModelError(f"{name} weights lack {missing[:3]}", hint="use another backbone")
            _freeze_first(self.body, freeze_stages)
        if frozen_bn:
            # ImageNet statistics stay: batches of a few detection images would spoil them
            self.body = freeze_batch_norm_2d(self.body)
        self.body.to(memory_format=torch.channels_last)
        channels = self.body.feature_info.channels()
        self.fpn = FeaturePyramidNetwork(channels, fpn_channels)
        self.out_channels = fpn_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        # channels_last: ~1.6x faster depthwise convolutions on CPU (measured, 2 cores)
        feats = self.body(x.contiguous(memory_format=torch.channels_last))
        # [(B, C3, H/8, W/8), (B, C4, H/16, W/16), (B, C5, H/32, W/32)]
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))

    # --- split forward, for training on cached features of the frozen first blocks ----------
    def _feature_blocks(self) -> list[int]:
        names = self.body.feature_info.module_name()
        if not all(n.startswith("blocks.") for n in names) or not hasattr(self.body, "conv_stem"):
            raise ModelError(
                "cached-feature training needs an EfficientNet/MobileNet-style backbone",
                hint="set cache_features=false or use backbone efficientnet_lite0",
            )
        return [int(n.split(".")[1]) for n in names]

    def prefix(self, x: torch.Tensor, upto: int) -> list[torch.Tensor]:
        """Stem and ``blocks[:upto]``: the FPN inputs produced so far, then the last hidden map."""
        h = self.body.bn1(self.body.conv_stem(x.contiguous(memory_format=torch.channels_last)))
        feats = []
        wanted = self._feature_blocks()
        for i in range(upto):
            h = self.body.blocks[i](h)
            if i in wanted:
                feats.append(h)
        return [*feats, h]

    def suffix(self, cached: list[torch.Tensor], start: int) -> OrderedDict[str, torch.Tensor]:
        """The rest of the network from ``prefix``'s output (``blocks[start:]``, then the FPN)."""
        feats, h = list(cached[:-1]), cached[-1]
        wanted = self._feature_blocks()
        for i in range(start, len(self.body.blocks)):
            h = self.body.blocks[i](h)
            if i in wanted:
                feats.append(h)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))


def _freeze_first(body: nn.Module, stages: int) -> None:
    """Freeze the stem and the first ``stages`` stages: no gradients, less work per step."""
    for name, param in body.named_parameters():
        top = name.split(".")[0]
        block = name.split(".")[1] if top == "blocks" else None
        stem = top in ("conv_stem", "bn1", "conv1", "stem")
        if stem or (block is not None and block.isdigit() and int(block) < stages):
            param.requires_grad_(False)


class Detector(nn.Module):
    """A torchvision detector with a two-method interface (losses, or detections)."""

    net: Any  # FCOS / RetinaNet / FasterRCNN / SSD (torchvision attributes used directly)

    def __init__(self, net: nn.Module, num_classes: int, label_offset: int) -> None:
        super().__init__()
        self.net = net
        self.num_classes = num_classes
        self.label_offset = label_offset  # 1 for models whose class 0 is background

    def loss(
        self, images: torch.Tensor | list[torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """Training losses for a batch; ``targets[i]``: ``boxes`` (N, 4) xyxy, ``labels`` 0..K-1."""
        self.net.train()
        shifted = [
            {"boxes": t["boxes"], "labels": t["labels"] + self.label_offset} for t in targets
        ]
        out: dict[str, torch.Tensor] = self.net(list(images), shifted)
        return out

    def set_nms_iou(self, iou: float) -> None:
        """The IoU above which non-maximum suppression drops the lower-scoring box."""
        heads = [self.net, getattr(self.net, "roi_heads", None)]  # Faster R-CNN: in roi_heads
        for part in heads:
            if part is not None and hasattr(part, "nms_thresh"):
                part.nms_thresh = float(iou)
                return
        raise ConfigError(
            f"{type(self.net).__name__} has no NMS threshold to set", hint="drop iou_threshold"
        )

    @torch.no_grad()
    def predict(self, images: torch.Tensor | list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Detections per image: ``boxes`` (M, 4) in input pixels, ``scores``, ``labels`` 0..K-1.

        Inputs move to the detector's device; detections come back on the CPU."""
        self.net.eval()
        device = next(self.parameters()).device
        out = self.net([x.to(device) for x in images])
        return [
            {
                "boxes": o["boxes"].cpu(),
                "scores": o["scores"].cpu(),
                "labels": o["labels"].cpu() - self.label_offset,
            }
            for o in out
        ]


@dataclass(frozen=True)
class DetectorSpec:
    """A registered detector: builder, whether class 0 is background, and what it can load."""

    name: str
    builder: Callable[..., nn.Module]
    label_offset: int
    description: str
    backbone_choice: bool  # accepts any registry backbone
    coco_weights: bool  # pretrained="coco" downloads torchvision COCO weights


DETECTORS: Registry[DetectorSpec] = Registry("detector", list_hint="imgrec architectures")


def _no_resize(net: Any, size: int, score_thresh: float) -> None:
    # inputs arrive preprocessed (resized + normalized by the model card's preprocessing)
    net.transform.min_size, net.transform.max_size = (size,), size
    net.transform.image_mean, net.transform.image_std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    if hasattr(net, "score_thresh"):
        net.score_thresh = score_thresh
    elif hasattr(net, "roi_heads"):
        net.roi_heads.score_thresh = score_thresh


def _fcos(
    num_classes: int,
    *,
    backbone: str,
    pretrained: bool | str,
    fpn_channels: int,
    head_convs: int,
    freeze_stages: int,
    image_size: int,
    score_thresh: float,
    frozen_bn: bool = False,
) -> nn.Module:
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.fcos import FCOSHead

    body = TimmFPNBackbone(backbone, fpn_channels, pretrained, freeze_stages, frozen_bn)
    anchors = AnchorGenerator(((8,), (16,), (32,)), ((1.0,),) * 3)
    net = FCOS(
        body,
        num_classes,
        anchor_generator=anchors,
        min_size=image_size,
        max_size=image_size,
        topk_candidates=300,
        detections_per_img=100,
    )
    net.head = FCOSHead(fpn_channels, 1, num_classes, num_convs=head_convs)
    _no_resize(net, image_size, score_thresh)
    return net


def _retinanet(
    num_classes: int,
    *,
    backbone: str,
    pretrained: bool | str,
    fpn_channels: int,
    head_convs: int,
    freeze_stages: int,
    image_size: int,
    score_thresh: float,
    frozen_bn: bool = False,
) -> nn.Module:
    from torchvision.models.detection import RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.retinanet import RetinaNetHead

    body = TimmFPNBackbone(backbone, fpn_channels, pretrained, freeze_stages, frozen_bn)
    sizes = tuple((s, int(s * 1.26), int(s * 1.59)) for s in (16, 32, 64))
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 3)
    net = RetinaNet(
        body, num_classes, anchor_generator=anchors, min_size=image_size, max_size=image_size
    )
    net.head = RetinaNetHead(fpn_channels, anchors.num_anchors_per_location()[0], num_classes)
    for branch in (net.head.classification_head, net.head.regression_head):
        branch.conv = branch.conv[:head_convs]
    _no_resize(net, image_size, score_thresh)
    return net


def _fasterrcnn(
    num_classes: int,
    *,
    backbone: str,
    pretrained: bool | str,
    fpn_channels: int,
    head_convs: int,
    freeze_stages: int,
    image_size: int,
    score_thresh: float,
    frozen_bn: bool = False,
) -> nn.Module:
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    del head_convs  # the two-stage heads have their own shapes
    body = TimmFPNBackbone(backbone, fpn_channels, pretrained, freeze_stages, frozen_bn)
    anchors = AnchorGenerator(((16,), (32,), (64,)), ((0.5, 1.0, 2.0),) * 3)
    pool = MultiScaleRoIAlign(["0", "1", "2"], output_size=7, sampling_ratio=2)
    net = FasterRCNN(
        body,
        num_classes + 1,
        rpn_anchor_generator=anchors,
        box_roi_pool=pool,
        min_size=image_size,
        max_size=image_size,
        representation_size=256,
    )
    _no_resize(net, image_size, score_thresh)
    return net


def _torchvision_coco(name: str, background: bool) -> Callable[..., nn.Module]:
    """A torchvision detector; ``pretrained="coco"`` loads its COCO weights (download)."""

    def build(
        num_classes: int,
        *,
        pretrained: bool | str = False,
        image_size: int = 320,
        score_thresh: float = 0.05,
        **_: Any,
    ) -> nn.Module:
        import torchvision.models.detection as tvd

        fn = getattr(tvd, name)
        k = num_classes + (1 if background else 0)
        if pretrained:
            try:
                net = fn(weights="DEFAULT")
            except Exception as exc:  # URLError, hub errors...
                raise WeightsUnavailableError(
                    f"could not download COCO weights for {name} ({type(exc).__name__})",
                    hint=f"are you offline? {OFFLINE_DETECTOR_HINT}",
                ) from exc
            _replace_classifier(net, k)
        else:
            net = fn(weights=None, weights_backbone=None, num_classes=k)
        _no_resize(net, image_size, score_thresh)
        return net

    build.__name__ = f"build_{name}"
    return build


def _replace_classifier(net: Any, k: int) -> None:
    """Fit a COCO-pretrained detector's class layer to ``k`` classes (the rest keeps COCO)."""
    import math

    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    if hasattr(net, "roi_heads"):
        in_features = net.roi_heads.box_predictor.cls_score.in_features
        net.roi_heads.box_predictor = FastRCNNPredictor(in_features, k)
        return
    head: Any = net.head.classification_head
    if hasattr(head, "cls_logits"):  # RetinaNet, FCOS
        old = head.cls_logits
        head.num_classes = k
        head.cls_logits = nn.Conv2d(old.in_channels, head.num_anchors * k, 3, padding=1)
        nn.init.normal_(head.cls_logits.weight, std=0.01)
        nn.init.constant_(head.cls_logits.bias, -math.log(99))
    else:  # SSDlite: one conv per feature map
        from torchvision.models.detection.ssdlite import SSDLiteClassificationHead

        channels = [
            m[1].in_channels if isinstance(m, nn.Sequential) else m.in_channels
            for m in head.module_list
        ]
        anchors = net.anchor_generator.num_anchors_per_location()
        net.head.classification_head = SSDLiteClassificationHead(
            channels, anchors, k, nn.BatchNorm2d
        )


def _register() -> None:
    for name, builder, offset, text in (
        ("fcos", _fcos, 0, "FCOS, anchor-free, FPN on a registry backbone (CPU default)"),
        ("retinanet", _retinanet, 0, "RetinaNet, focal loss, FPN on a registry backbone"),
        ("fasterrcnn", _fasterrcnn, 1, "Faster R-CNN, two-stage, FPN on a registry backbone"),
    ):
        DETECTORS.add(
            name,
            DetectorSpec(name, builder, offset, text, backbone_choice=True, coco_weights=False),
        )
    for name, background, text in (
        ("fasterrcnn_resnet50_fpn", True, "torchvision Faster R-CNN ResNet-50 FPN (COCO weights)"),
        (
            "fasterrcnn_mobilenet_v3_large_fpn",
            True,
            "torchvision Faster R-CNN MobileNetV3 (COCO weights)",
        ),
        ("retinanet_resnet50_fpn", False, "torchvision RetinaNet ResNet-50 FPN (COCO weights)"),
        ("fcos_resnet50_fpn", False, "torchvision FCOS ResNet-50 FPN (COCO weights)"),
        (
            "ssdlite320_mobilenet_v3_large",
            True,
            "torchvision SSDlite 320 MobileNetV3 (COCO weights)",
        ),
    ):
        DETECTORS.add(
            name,
            DetectorSpec(
                name,
                _torchvision_coco(name, background),
                int(background),
                text,
                backbone_choice=False,
                coco_weights=True,
            ),
        )


_register()

DEFAULT_ARCH_KWARGS: dict[str, Any] = {
    "backbone": DEFAULT_BACKBONE,
    "fpn_channels": 64,
    "head_convs": 2,
    "freeze_stages": 2,
    "frozen_bn": True,
    "image_size": 256,
    "score_thresh": 0.05,
}


def build_detector(
    name: str, num_classes: int, *, pretrained: bool | str = False, **kw: Any
) -> Detector:
    """Build detector ``name`` for ``num_classes`` classes (``kw``: the card's ``arch_kwargs``)."""
    spec = DETECTORS.get(name)
    if spec.backbone_choice:
        options = {**DEFAULT_ARCH_KWARGS, **kw}
        net = spec.builder(num_classes, pretrained=pretrained, **options)
    else:
        net = spec.builder(num_classes, pretrained=pretrained, **kw)
    return Detector(net, num_classes, spec.label_offset)


def load_detector(path: str) -> tuple[Detector, Any]:
    """Load a detection model directory; returns ``(detector in eval mode, ModelCard)``.

    The card must have ``task: detect``; weights load strictly (shape or key problems raise
    ``ModelError``). Example: ``det, card = load_detector("runs/d1/model")``.
    """
    from imgrec.models.card import read_model_dir
    from imgrec.models.weights import load_state_strict

    card, state = read_model_dir(path)
    if card.task != "detect":
        raise ModelError(
            f"{path} holds a {card.task!r} model, not a detector", hint="use a detection model dir"
        )
    det = build_detector(card.architecture, card.num_classes, pretrained=False, **card.arch_kwargs)
    load_state_strict(det, state, source=f"weights for {card.architecture}")
    return det.eval(), card
