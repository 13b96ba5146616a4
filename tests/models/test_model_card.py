"""Model directories: round trip, atomic replacement, and every invalid-model case (row 17)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from imgrec.errors import ModelError
from imgrec.models import build_model
from imgrec.models.architectures import build_from_card
from imgrec.models.card import (
    CARD_FILE,
    FORMAT,
    WEIGHTS_FILE,
    ModelCard,
    Preprocessing,
    read_model_dir,
    save_model_dir,
)

ARCH_KW = {"stem_width": 8, "widths": [8, 16], "depths": [1, 1]}


def _model_and_card(num_classes: int = 3) -> tuple[torch.nn.Module, ModelCard]:
    torch.manual_seed(0)
    net = build_model("small_resnet", num_classes, **ARCH_KW)
    card = ModelCard(
        architecture="small_resnet",
        arch_kwargs=dict(ARCH_KW),
        classes=[f"c{i}" for i in range(num_classes)],
        preprocessing=Preprocessing(input_size=28, resize_size=28, mean=(0.1,) * 3),
        metrics={"accuracy": 0.5},
        dataset={"uri": "data/x", "fingerprint": "sha256:abc"},
    )
    return net, card


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    net, card = _model_and_card()
    out = save_model_dir(net, card, tmp_path / "model dir")
    assert sorted(p.name for p in Path(out).iterdir()) == [CARD_FILE, WEIGHTS_FILE]
    data = json.loads((Path(out) / CARD_FILE).read_text())
    assert data["format"] == FORMAT and data["num_classes"] == 3
    assert data["preprocessing"]["mean"] == [0.1, 0.1, 0.1]

    card2, state = read_model_dir(out)
    assert card2.to_dict() == card.to_dict()
    net2 = build_from_card(card2, state)
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(net2(x), net.eval()(x), rtol=0, atol=0)


def test_save_replaces_atomically_and_leaves_no_temp(tmp_path: Path) -> None:
    net, card = _model_and_card()
    target = tmp_path / "model"
    save_model_dir(net, card, target)
    card.metrics = {"accuracy": 0.9}
    save_model_dir(net, card, target)
    assert read_model_dir(target)[0].metrics == {"accuracy": 0.9}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_failed_save_keeps_the_previous_model(tmp_path: Path) -> None:
    net, card = _model_and_card()
    target = tmp_path / "model"
    save_model_dir(net, card, target)
    before = (target / WEIGHTS_FILE).read_bytes()
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))
    with pytest.raises(ModelError, match="NaN"):
        save_model_dir(net, card, target)
    assert (target / WEIGHTS_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    net, card = _model_and_card()
    return Path(save_model_dir(net, card, tmp_path / "m"))


def _edit_card(model_dir: Path, **changes: object) -> None:
    data = json.loads((model_dir / CARD_FILE).read_text())
    data.update(changes)
    (model_dir / CARD_FILE).write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / CARD_FILE).unlink(), "has no model.json"),
        (lambda d: (d / WEIGHTS_FILE).unlink(), "has no weights.safetensors"),
        (lambda d: (d / CARD_FILE).write_text("{not json"), "not valid JSON"),
        (lambda d: _edit_card(d, format="imgrec.model/v9"), "unknown model format"),
        (lambda d: _edit_card(d, num_classes=4), "class-count mismatch"),
        (lambda d: _edit_card(d, preprocessing={"input_size": 2}), "input_size"),
        (
            lambda d: (d / WEIGHTS_FILE).write_bytes((d / WEIGHTS_FILE).read_bytes()[:-100]),
            "not a valid safetensors",
        ),
    ],
    ids=["no-card", "no-weights", "bad-json", "format", "count", "preprocessing", "truncated"],
)
def test_invalid_model_dirs(model_dir: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    damage(model_dir)
    with pytest.raises(ModelError, match=message) as info:
        read_model_dir(model_dir)
    assert info.value.code == "invalid_model"


def test_nan_weights_in_file_are_refused(model_dir: Path) -> None:
    _, state = read_model_dir(model_dir)
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key].clone().fill_(float("nan"))
    save_file(state, model_dir / WEIGHTS_FILE)
    with pytest.raises(ModelError, match=f"NaN/inf weights.*{key}"):
        read_model_dir(model_dir)


def test_head_of_another_class_count_is_named(model_dir: Path) -> None:
    # the card claims 4 classes (consistently) but the weights hold a 3-class head
    _edit_card(model_dir, num_classes=4, classes=["a", "b", "c", "d"])
    card, state = read_model_dir(model_dir)
    with pytest.raises(ModelError, match=r"class-count mismatch.*fc\.weight"):
        build_from_card(card, state)


def test_weights_of_another_architecture_are_named(model_dir: Path) -> None:
    _edit_card(model_dir, arch_kwargs={"stem_width": 12, "widths": [8, 16], "depths": [1, 1]})
    card, state = read_model_dir(model_dir)
    with pytest.raises(ModelError, match=r"wrong shapes.*stem\.0\.weight"):
        build_from_card(card, state)


@pytest.mark.s3
def test_s3_round_trip(make_bucket) -> None:  # type: ignore[no-untyped-def]
    bucket = make_bucket()
    net, card = _model_and_card()
    uri = f"s3://{bucket}/models/cats/v1"
    assert save_model_dir(net, card, uri) == uri
    card2, state = read_model_dir(uri)
    assert card2.classes == card.classes
    for k, v in net.state_dict().items():
        assert torch.equal(state[k], v)
    with pytest.raises(ModelError, match=r"has no model\.json"):
        read_model_dir(f"s3://{bucket}/models/none")
