"""Boxes stay on their objects through every augmentation preset and every EXIF orientation.

Objects are solid white rectangles on black; after a transform, every output box must hug a
white region in the output pixels: its inside (shrunk by 2 px) mostly white, and a ring just
outside it mostly dark.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from imgrec.data.detection import load_detection_data
from imgrec.data.detection.augment import DETECTION_AUGMENT, DetectionDataset, train_transform
from imgrec.data.detection.types import DetectionRecord
from imgrec.models.card import Preprocessing

# mean 0 / std 1: zoom-out fills with black and the output stays in 0..1 pixel units
PRE = Preprocessing(
    input_size=96, resize_size=96, crop="none", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)
)


def _scene(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, np.ndarray]:
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    boxes: list[list[int]] = []
    for _ in range(int(rng.integers(1, 4))):
        w, h = (
            int(rng.integers(width // 6, width // 3)),
            int(rng.integers(height // 6, height // 3)),
        )
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        if all(
            x + w + 12 < a or c + 12 < x or y + h + 12 < b or d + 12 < y for a, b, c, d in boxes
        ):
            draw.rectangle([x, y, x + w - 1, y + h - 1], fill=(255, 255, 255))
            boxes.append([x, y, x + w, y + h])
    return image, np.asarray(boxes, np.float32)


def assert_boxes_on_objects(x: torch.Tensor, boxes: torch.Tensor) -> None:
    gray = x.float().mean(0).numpy()  # (H, W)
    threshold = (gray.max() + gray.min()) / 2
    bright = gray > threshold
    H, W = bright.shape
    for x1, y1, x2, y2 in boxes.tolist():
        if x2 - x1 < 6 or y2 - y1 < 6:
            continue  # too small to judge after downscaling
        inner = bright[int(np.ceil(y1)) + 2 : int(y2) - 2, int(np.ceil(x1)) + 2 : int(x2) - 2]
        assert inner.mean() > 0.9, (
            f"box {x1, y1, x2, y2} is not on an object ({inner.mean():.2f} bright)"
        )
        ring = np.zeros_like(bright)
        a, b = max(int(y1) - 4, 0), min(int(np.ceil(y2)) + 4, H)
        c, d = max(int(x1) - 4, 0), min(int(np.ceil(x2)) + 4, W)
        ring[a:b, c:d] = True
        ring[
            max(int(y1) - 1, 0) : min(int(np.ceil(y2)) + 1, H),
            max(int(x1) - 1, 0) : min(int(np.ceil(x2)) + 1, W),
        ] = False
        if ring.any():
            assert bright[ring].mean() < 0.15, f"box {x1, y1, x2, y2} does not hug its object"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    preset=st.sampled_from(DETECTION_AUGMENT.names()),
    hflip=st.sampled_from([0.0, 1.0]),
    size=st.tuples(st.integers(80, 200), st.integers(80, 200)),
)
def test_boxes_stay_on_objects_through_augmentation(seed, preset, hflip, size) -> None:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    image, boxes = _scene(rng, *size)
    record = DetectionRecord("unused", image.width, image.height, boxes, np.zeros(len(boxes)))
    from imgrec.data.detection.augment import make_target

    x, target = train_transform(PRE, preset, hflip=hflip)(
        image, make_target(record, image.height, image.width)
    )
    assert x.shape == (3, 96, 96)
    assert len(target["boxes"]) == len(target["labels"]) <= len(boxes)
    assert_boxes_on_objects(x, target["boxes"])


_INVERSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@settings(
    max_examples=14, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(orientation=st.integers(2, 8), seed=st.integers(0, 1000))
def test_boxes_refer_to_the_oriented_image_for_every_exif_orientation(
    orientation, seed, tmp_path_factory
) -> None:
    """Labels written for the upright photo stay right when the file stores it rotated + EXIF."""
    root: Path = tmp_path_factory.mktemp(f"exif{orientation}")
    upright, boxes = _scene(np.random.default_rng(seed), 120, 80)
    stored = upright.transpose(_INVERSE[orientation])  # what a camera writes
    exif = Image.Exif()
    exif[0x0112] = orientation
    (root / "images" / "train").mkdir(parents=True)
    stored.save(root / "images" / "train" / "p.jpg", quality=98, exif=exif)
    anns = [
        {
            "id": i + 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
        }
        for i, b in enumerate(boxes.tolist())
    ]
    (root / "annotations").mkdir()
    (root / "annotations" / "train.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "p.jpg", "width": 120, "height": 80}],
                "annotations": anns,
                "categories": [{"id": 1, "name": "box"}],
            }
        )
    )
    data = load_detection_data(root)
    assert [i.code for i in data.report.issues] == []  # oriented size 120x80 matches the JSON
    (record,) = data.split("train")
    assert (record.width, record.height) == (120, 80)
    x, target = DetectionDataset([record], train_transform(PRE, "none"))[0]  # type: ignore[misc]
    assert len(target["boxes"]) == len(boxes)
    assert_boxes_on_objects(x, target["boxes"])
