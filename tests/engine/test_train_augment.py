"""Augmentation presets, train-vs-eval normalization, MixUp/CutMix, optimizers, schedules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imgrec.data.augment import AUGMENT_PRESETS, batch_mixer, build_augment
from imgrec.data.transforms import eval_transform
from imgrec.engine.batches import TensorBatches, load_uint8
from imgrec.engine.optim import build_optimizer, build_scheduler
from imgrec.errors import UnknownNameError
from imgrec.models.card import Preprocessing


def test_training_pixels_equal_eval_transform_without_augmentation(tmp_path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(path)
    pre = Preprocessing(input_size=32, resize_size=36, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25))
    cached = load_uint8(str(path), pre)[None]  # what the in-memory cache holds
    batches = TensorBatches(cached, torch.tensor([0]), pre, batch_size=1, shuffle=False,
                            augment=build_augment("none", 32))  # fmt: skip
    x, _ = next(iter(batches))
    want = eval_transform(pre)(Image.open(path).convert("RGB"))
    torch.testing.assert_close(x[0], want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", AUGMENT_PRESETS.names())
def test_presets_keep_shape_and_dtype(name: str) -> None:
    torch.manual_seed(0)
    batch = torch.randint(0, 256, (4, 3, 24, 24), dtype=torch.uint8)
    out = build_augment(name, 24)(batch)
    assert out.shape == batch.shape and out.dtype == torch.uint8
    single = build_augment(name, 24)(batch[0])
    assert single.shape == (3, 24, 24)


def test_light_gives_each_image_its_own_transform() -> None:
    torch.manual_seed(0)
    image = torch.zeros(3, 28, 28, dtype=torch.uint8)
    image[:, 10:18, 6:22] = 255
    out = build_augment("light", 28)(image.expand(8, -1, -1, -1).contiguous())
    distinct = {out[i].numpy().tobytes() for i in range(8)}
    assert len(distinct) == 8
    # small changes: most of the bright bar stays bright
    assert all(float((o[0] > 127).float().sum()) > 0.6 * 8 * 16 for o in out)


def test_elastic_bends_each_image_beyond_the_affine_of_light() -> None:
    image = torch.zeros(3, 28, 28, dtype=torch.uint8)
    image[:, 4:24, 12:16] = 255  # a vertical stroke
    batch = image.expand(8, -1, -1, -1).contiguous()
    torch.manual_seed(0)
    light = build_augment("light", 28)(batch)
    torch.manual_seed(0)  # the same rotation, shift and scale draws, then the warp's
    elastic = build_augment("elastic", 28)(batch)
    assert len({elastic[i].numpy().tobytes() for i in range(8)}) == 8
    for a, b in zip(light, elastic, strict=True):
        assert not torch.equal(a, b)  # the warp moved pixels the affine alone did not
        # a bend, not noise: the stroke keeps roughly its ink
        ink_a, ink_b = float(a[0].float().sum()), float(b[0].float().sum())
        assert 0.6 * ink_a < ink_b < 1.5 * ink_a


def test_mixup_cutmix_give_soft_targets() -> None:
    assert batch_mixer(5) is None
    torch.manual_seed(0)
    mix = batch_mixer(5, mixup_alpha=0.4, cutmix_alpha=1.0)
    assert mix is not None
    _, y = mix(torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4, 0]))
    assert y.shape == (6, 5)
    torch.testing.assert_close(y.sum(1), torch.ones(6))


def test_unknown_names_suggest() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'strong'"):
        build_augment("strnog")
    with pytest.raises(UnknownNameError, match="did you mean 'adamw'"):
        build_optimizer("adam", [torch.nn.Parameter(torch.ones(2))], lr=0.1, weight_decay=0.0)


@pytest.mark.parametrize("name", ["cosine", "onecycle", "constant"])
def test_schedules_warm_up_and_round_trip(name: str) -> None:
    param = torch.nn.Parameter(torch.ones(2, 2))
    opt = build_optimizer("sgd", [param], lr=0.1, weight_decay=1e-4)
    sched = build_scheduler(name, opt, total_steps=100, warmup_steps=10)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] < lrs[10] and max(lrs) == pytest.approx(0.1, rel=0.05)
    if name != "constant":
        assert lrs[-1] < 0.02
    state = sched.state_dict()
    buffer = __import__("io").BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)  # checkpointable


@pytest.mark.parametrize("name", ["cosine", "onecycle", "constant"])
@pytest.mark.parametrize("total", [1, 2, 3, 4, 5, 7, 12])
def test_schedules_survive_very_short_runs(name: str, total: int) -> None:
    param = torch.nn.Parameter(torch.ones(2))
    opt = build_optimizer("adamw", [param], lr=0.01, weight_decay=0.0)
    sched = build_scheduler(name, opt, total_steps=total, warmup_steps=1)
    for _ in range(total):
        opt.step()
        sched.step()
        assert 0 < opt.param_groups[0]["lr"] <= 0.01 + 1e-12


def test_config_accepts_every_registered_preset() -> None:
    """The config's ``augment`` choices are the registry's names: a preset added to
    ``AUGMENT_PRESETS`` but not to ``TrainConfig`` could not be chosen (and the reverse
    would pass validation and fail in training)."""
    from dataclasses import fields

    from imgrec.config import TrainConfig

    (augment,) = [f for f in fields(TrainConfig) if f.name == "augment"]
    assert set(augment.metadata["choices"]) == set(AUGMENT_PRESETS.names())
