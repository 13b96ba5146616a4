"""A detection model through the dashboard: the boxes drawn over the image in Chromium sit on
the same image pixels as the boxes the API returns (a tiny FCOS trained here, served by the
real KServe predictor; the photo is a 512x384 JPEG, not the model's 96-px input)."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from browser_helpers import Dashboard, Visit, screenshot
from serving_helpers import Server, jpeg_bytes, start_server, stop_server, train_tiny_detector

pytestmark = pytest.mark.slow

# Each drawn box's corners, in image pixels: (box's screen position - image's) * image px per
# screen px. The browser rounds layout to 1/64 px; an image pixel here is ~1.5 screen px.
PIXEL_POSITIONS = """(card) => {
    const img = card.querySelector("img").getBoundingClientRect();
    const scale = Number(card.querySelector("img").dataset.width) / img.width;
    return Array.from(card.querySelectorAll("rect.box"), (r) => {
        const b = r.getBoundingClientRect();
        return {api: JSON.parse(r.dataset.box), label: r.dataset.label,
                drawn: [(b.left - img.left) * scale, (b.top - img.top) * scale,
                        (b.right - img.left) * scale, (b.bottom - img.top) * scale]};
    });
}"""


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dash-detect")
    train_tiny_detector(root)
    return root


@pytest.fixture(scope="module")
def server(detector: Path) -> Any:
    srv = start_server(str(detector / "run" / "model"), detector, options={"threads": 1})
    yield srv
    stop_server(srv)


def test_boxes_are_drawn_on_the_apis_pixels(
    detector: Path,
    server: Server,
    dashboard: Callable[..., Dashboard],
    visit: Callable[[str, str], Visit],
) -> None:
    src = sorted((detector / "data" / "images" / "val").iterdir())[0]
    photo = jpeg_bytes(Image.open(src).convert("RGB").resize((512, 384)))
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                        "data": [base64.b64encode(photo).decode()]}]}  # fmt: skip
    out = httpx.post(f"{server.url}/v2/models/imgrec/infer", json=body, timeout=120).json()
    want = json.loads(next(o for o in out["outputs"] if o["name"] == "detections")["data"][0])
    assert want, "the model found nothing to draw"

    dash = dashboard("--store", str(detector / "store"), "--server", server.url)
    v = visit(f"{dash.url}/try", "try-detect-empty")
    v.page.set_input_files("#files", [{"name": "digits.jpg", "mimeType": "image/jpeg",
                                       "buffer": photo}])  # fmt: skip
    card = v.page.wait_for_selector("article.result", timeout=120_000)
    assert card is not None
    drawn = v.page.evaluate(PIXEL_POSITIONS, card)
    screenshot(v.page, "try-detect-boxes")
    assert [d["api"] for d in drawn] == [w["box"] for w in want]
    assert [d["label"] for d in drawn] == [w["label"] for w in want]
    for d in drawn:
        assert d["drawn"] == pytest.approx(d["api"], abs=1.0)
    assert max(d["drawn"][2] for d in drawn) > 96  # the photo's pixels, not the model input's
    assert v.errors == []
