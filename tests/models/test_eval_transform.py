"""``eval_transform`` against an independent PIL + numpy computation of the same recipe."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from imgrec.data.transforms import batch_tensor, eval_transform, normalize_uint8
from imgrec.errors import ModelError
from imgrec.models.card import Preprocessing


def _photo(w: int = 90, h: int = 60) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _reference(img: Image.Image, pre: Preprocessing) -> np.ndarray:
    # shorter side -> resize_size (Pillow, same filter), central crop, scale, normalize
    w, h = img.size
    scale = pre.resize_size / min(w, h)
    size = (round(w * scale), round(h * scale)) if w != h else (pre.resize_size,) * 2
    resized = img.resize(size, Image.Resampling.BILINEAR)
    left = round((size[0] - pre.input_size) / 2.0)
    top = round((size[1] - pre.input_size) / 2.0)
    crop = resized.crop((left, top, left + pre.input_size, top + pre.input_size))
    arr = np.asarray(crop, dtype=np.float32) / 255.0
    arr = (arr - np.array(pre.mean, np.float32)) / np.array(pre.std, np.float32)
    return arr.transpose(2, 0, 1)


def test_resize_center_crop_normalize_matches_reference() -> None:
    pre = Preprocessing(input_size=32, resize_size=40, interpolation="bilinear")
    img = _photo()
    x = eval_transform(pre)(img)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    np.testing.assert_allclose(x.numpy(), _reference(img, pre), atol=1e-5)


def test_crop_none_squashes_the_whole_image() -> None:
    pre = Preprocessing(input_size=16, resize_size=16, crop="none", mean=(0, 0, 0), std=(1, 1, 1))
    img = _photo(80, 20)
    x = eval_transform(pre)(img)
    ref = np.asarray(img.resize((16, 16), Image.Resampling.BILINEAR), np.float32) / 255.0
    np.testing.assert_allclose(x.numpy(), ref.transpose(2, 0, 1), atol=1e-5)


def test_batch_and_uint8_fast_path_agree_with_single_images() -> None:
    pre = Preprocessing(input_size=24, resize_size=24)
    imgs = [_photo(24, 24), _photo(24, 24).rotate(90)]
    batch = batch_tensor(imgs, pre)
    assert batch.shape == (2, 3, 24, 24)
    torch.testing.assert_close(batch[1], eval_transform(pre)(imgs[1]))
    raw = torch.stack([torch.from_numpy(np.array(i)).permute(2, 0, 1) for i in imgs])
    torch.testing.assert_close(normalize_uint8(raw, pre), batch, atol=1e-6, rtol=0)
    assert batch_tensor([], pre).shape == (0, 3, 24, 24)


def test_transform_is_picklable_for_dataloader_workers() -> None:
    pre = Preprocessing(input_size=8, resize_size=10, interpolation="bicubic")
    tf = pickle.loads(pickle.dumps(eval_transform(pre)))
    torch.testing.assert_close(tf(_photo()), eval_transform(pre)(_photo()))


@pytest.mark.parametrize(
    "kw",
    [
        {"input_size": 4},
        {"input_size": 64, "resize_size": 32},
        {"crop": "random"},
        {"interpolation": "area"},
        {"std": (0.0, 1.0, 1.0)},
    ],
)
def test_invalid_preprocessing_is_refused(kw: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ModelError, match="invalid preprocessing"):
        Preprocessing(**kw)


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (1600, 1200), (300, 257), (256, 256)])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_one_step_resize_crop_matches_resize_then_crop_on_a_photo(
    size: tuple[int, int], interpolation: str
) -> None:
    from skimage import data
    from torchvision.transforms import v2

    from imgrec.data.transforms import INTERPOLATION_MODES, ResizeCenterCrop

    photo = Image.fromarray(data.astronaut()).resize(size, Image.Resampling.BICUBIC)
    mode = INTERPOLATION_MODES[interpolation]
    two_step = v2.Compose([v2.Resize(256, interpolation=mode, antialias=True), v2.CenterCrop(224)])
    want = np.asarray(two_step(photo), dtype=np.int16)
    got = np.asarray(ResizeCenterCrop(256, 224, mode)(photo), dtype=np.int16)
    assert got.shape == want.shape == (224, 224, 3)
    diff = np.abs(got - want)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # sample positions equal up to rounding
