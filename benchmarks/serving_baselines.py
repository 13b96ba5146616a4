"""The baselines of benchmarks/serving.py, each run as its own server process.

* ``plain``: a plain PyTorch-eager KServe predictor as a KServe user would first write it:
  ``preprocess`` decodes the base64 JPEG with PIL at full size and applies torchvision's
  Resize/CenterCrop/Normalize, ``predict`` runs the network in eager mode, one request at a
  time, inside the ``async`` handler.
* ``torchserve-model``: writes the TorchScript EfficientNet-Lite0 + ``index_to_name.json``
  that TorchServe's stock ``image_classifier`` handler serves.

Usage (from the repo root): ``python -m benchmarks.serving_baselines plain PORT``.
"""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision import transforms


def _model_and_transform() -> tuple[torch.nn.Module, Any, list[str]]:
    from imgrec.predictor import load_model

    clf = load_model("efficientnet_lite0")
    pre = clf.card.preprocessing
    tf = transforms.Compose([
        transforms.Resize(pre.resize_size),
        transforms.CenterCrop(pre.input_size),
        transforms.ToTensor(),
        transforms.Normalize(pre.mean, pre.std),
    ])  # fmt: skip
    return clf.module.eval(), tf, clf.classes


def run_plain(port: int) -> None:
    """Serve the plain eager predictor on 127.0.0.1:PORT (name ``imgrec``)."""
    from imgrec.serving._kserve import kserve
    from imgrec.serving.server import ImgrecModelServer

    net, tf, classes = _model_and_transform()

    class PlainEager(kserve.Model):  # type: ignore[misc]
        def load(self) -> bool:
            self.ready = True
            return True

        async def preprocess(self, body: Any, headers: Any = None) -> torch.Tensor:
            images = [
                Image.open(io.BytesIO(base64.b64decode(i["image"]["b64"]))).convert("RGB")
                for i in body["instances"]
            ]
            return torch.stack([tf(im) for im in images])

        async def predict(self, x: torch.Tensor, headers: Any = None) -> dict[str, Any]:
            with torch.inference_mode():
                probs = net(x).softmax(1)
            scores, ids = probs.topk(5, dim=1)
            return {"predictions": [
                {"labels": [classes[j] for j in row_ids], "scores": row_scores.tolist()}
                for row_ids, row_scores in zip(ids.tolist(), scores, strict=True)
            ]}  # fmt: skip

    model = PlainEager("imgrec")
    model.load()
    ImgrecModelServer(host="127.0.0.1", port=port).start([model])


def write_torchserve_model(folder: str) -> tuple[Path, Path]:
    """TorchScript model + index_to_name.json for the stock ``image_classifier`` handler."""
    net, _, classes = _model_and_transform()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        traced = torch.jit.trace(net, torch.zeros(1, 3, 224, 224))
    model_path = out / "lite0.pt"
    traced.save(str(model_path))
    index = out / "index_to_name.json"
    index.write_text(json.dumps({str(i): ["", name] for i, name in enumerate(classes)}))
    return model_path, index


if __name__ == "__main__":
    if sys.argv[1] == "plain":
        run_plain(int(sys.argv[2]))
