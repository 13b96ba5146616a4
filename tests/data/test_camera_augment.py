"""The "camera" augmentation preset: stroke thickness, rotation, blur, per image, batched."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from imgrec.data.augment import CameraShift, build_augment, gaussian_blur_batch


def _bar(n: int) -> torch.Tensor:
    """``n`` copies of a vertical 2-px bright bar on black, ``(n, 3, 28, 28)`` uint8."""
    image = torch.zeros(3, 28, 28, dtype=torch.uint8)
    image[:, 6:22, 13:15] = 255
    return image.expand(n, -1, -1, -1).contiguous()


def test_each_effect_does_what_it_says() -> None:
    torch.manual_seed(0)
    still = {"degrees": 0.0, "translate": 0.0, "scale": (1.0, 1.0)}
    bars = _bar(16).float()
    thick = CameraShift(**still, thicken=1.0, thin=0.0, blur=0.0)(bars)
    want = F.max_pool2d(bars, 3, stride=1, padding=1)  # 4 px wide, 18 high
    torch.testing.assert_close(thick, want, atol=1e-3, rtol=0)
    thin = CameraShift(**still, thicken=0.0, thin=1.0, blur=0.0)(bars)
    assert int((thin[0, 0] > 0).sum()) == 0  # a 3x3 min filter erases a 2-px stroke
    same = CameraShift(**still, thicken=0.0, thin=0.0, blur=0.0)(bars)
    torch.testing.assert_close(same, bars, atol=1e-3, rtol=0)
    blurred = CameraShift(**still, thicken=0.0, thin=0.0, blur=1.0)(bars)
    assert ((blurred > 1) & (blurred < 254)).sum() > 16 * 40  # soft edges everywhere
    torch.testing.assert_close(blurred.sum((1, 2, 3)), bars.sum((1, 2, 3)), rtol=1e-4, atol=0)


def test_rotations_reach_thirty_degrees_and_differ_per_image() -> None:
    torch.manual_seed(0)
    out = CameraShift(translate=0.0, scale=(1.0, 1.0), thicken=0.0, thin=0.0, blur=0.0)(_bar(64))
    assert len({o.numpy().tobytes() for o in out}) == 64

    def tilt(img: torch.Tensor) -> float:  # angle of the bright bar from vertical, degrees
        ys, xs = torch.nonzero(img[0] > 127, as_tuple=True)
        ys, xs = ys.float() - ys.float().mean(), xs.float() - xs.float().mean()
        return float(torch.rad2deg(0.5 * torch.atan2(2 * (xs * ys).sum(), (ys**2 - xs**2).sum())))

    tilts = [abs(tilt(o)) for o in out]
    assert max(tilts) > 20 and max(tilts) < 32 and min(tilts) < 10


def test_blur_matches_a_separable_gaussian_and_zero_sigma_is_identity() -> None:
    torch.manual_seed(0)
    x = torch.rand(3, 3, 20, 24)
    sigma = torch.tensor([0.0, 0.8, 1.5])
    out = gaussian_blur_batch(x, sigma)
    torch.testing.assert_close(out[0], x[0])
    for i in (1, 2):
        r = 5
        offsets = torch.arange(-r, r + 1, dtype=torch.float32)
        k = torch.exp(-(offsets**2) / (2 * float(sigma[i]) ** 2))
        k = (k / k.sum()).repeat(3, 1)
        padded = F.pad(x[i : i + 1], (r, r, r, r), mode="replicate")
        want = F.conv2d(padded, k.view(3, 1, 1, -1), groups=3)
        want = F.conv2d(want, k.view(3, 1, -1, 1), groups=3)
        torch.testing.assert_close(out[i], want[0], atol=1e-5, rtol=0)


def test_the_preset_is_registered_and_probabilities_are_checked() -> None:
    assert isinstance(build_augment("camera", 28), CameraShift)
    with pytest.raises(ValueError, match="probabilities"):
        CameraShift(thicken=0.8, thin=0.3)


def test_p_leaves_the_other_images_to_a_light_affine() -> None:
    torch.manual_seed(0)
    bars = _bar(32)
    out = CameraShift(p=0.0, translate=0.0, scale=(1.0, 1.0))(bars)
    bright = (out[:, 0] > 127).sum((1, 2))
    assert int(bright.max()) <= 40  # never thickened (a thick bar has 72 bright pixels)
    assert int(((out > 5) & (out < 250)).sum()) < 32 * 3 * 80  # rotated edges only, no blur
    half = CameraShift(p=0.5, thicken=1.0, thin=0.0, blur=0.0, degrees=0.0)(bars)
    thick = (half[:, 0] > 127).sum((1, 2)) > 50
    assert 5 < int(thick.sum()) < 27
