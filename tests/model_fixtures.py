"""Small models and images for tests and benchmarks that need a real server to load something.

``servable_model(root, classes, seed)`` writes an untrained ``small_resnet`` model directory
(32 px); ``png_b64(seed)`` is a random 40x40 PNG, base64 (a V1 request's image).
"""

from __future__ import annotations

from pathlib import Path


def servable_model(root: Path, classes: list[str], seed: int) -> Path:
    """A small untrained ``small_resnet`` model directory the server can load (32 px)."""
    import torch

    from imgrec.models.architectures import build_model
    from imgrec.models.card import ModelCard, Preprocessing, save_model_dir

    torch.manual_seed(seed)
    net = build_model("small_resnet", num_classes=len(classes))
    card = ModelCard(
        architecture="small_resnet",
        classes=classes,
        preprocessing=Preprocessing(input_size=32, resize_size=32),
    )
    out = root / f"model-{seed}"
    save_model_dir(net, card, out)
    return out


def png_b64(seed: int) -> str:
    """A random 40x40 PNG, base64 (for V1 requests)."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    arr = np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()
