"""``predict(sources, model=...)`` for detectors: one JSON record per image, boxes in its pixels.

Each image gives ``{"source", "detections": [{"label", "score", "box": [x1, y1, x2, y2]}]}``
with boxes in the ORIGINAL image's pixels (after its EXIF orientation), sorted by score; a bad
image gives ``{"source", "error": {"code", "message"}}``. ``save_dir`` also writes each image
with its boxes and labels drawn (``"saved"``). A video file (``.mp4 .avi .mov .mkv .webm .m4v``)
gives one record with an annotated copy (``"video"``), per-frame detections and the frames per
second the detector ran at (``"fps"``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imgrec.errors import ConfigError, ImgrecError, StorageError
from imgrec.models.detectors import Detector

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})


def detection_records(
    found: dict[str, np.ndarray], classes: Sequence[str], threshold: float
) -> list[dict[str, Any]]:
    """JSON-able detections above ``threshold``, best first, boxes rounded to 0.01 px."""
    order = np.argsort(-found["scores"], kind="stable")
    return [
        {
            "label": classes[int(found["labels"][i])],
            "score": round(float(found["scores"][i]), 5),
            "box": [round(float(v), 2) for v in found["boxes"][i]],
        }
        for i in order
        if found["scores"][i] >= threshold
    ]


def draw_detections(image: Image.Image, detections: list[dict[str, Any]]) -> Image.Image:
    """``image`` with each detection's box, label and score drawn (``imgrec.visualize``)."""
    from imgrec.visualize import draw_boxes

    return draw_boxes(
        image,
        [d["box"] for d in detections],
        [d["label"] for d in detections],
        [d["score"] for d in detections],
    )


def _load(model: Any) -> tuple[Detector, Any]:
    if isinstance(model, tuple):
        return model
    from imgrec.models.detectors import load_detector

    return load_detector(os.fspath(model))


def predict(
    sources: Any,
    *,
    model: Any,
    top_k: int | None = None,
    max_detections: int = 100,
    save_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 8,
    score_threshold: float | None = None,
    iou_threshold: float | None = None,
    precision: str = "fp32",
    **_: Any,
) -> Iterator[dict[str, Any]]:
    """Yield one record per image (or video) in the order of the expanded ``sources``.

    ``top_k`` (the classifiers' option) is ignored: detections are chosen by
    ``score_threshold`` (``--conf``; default: the card's), non-maximum suppression at
    ``iou_threshold`` (``--iou``; default: the detector's), at most ``max_detections``
    (``--max-det``) per image. Values out of range raise ``ConfigError`` before the model loads.
    Detectors run in fp32 only: another ``precision`` is refused before the model loads.

    Example::

        for rec in predict(["street.jpg"], model="runs/d1/model", save_dir="out"):
            print(rec["detections"][:3])
    """
    from imgrec.data.images import load_image
    from imgrec.data.sources import expand_sources
    from imgrec.quantize import require_fp32
    from imgrec.tasks.detect.evaluate import card_threshold, detect_images

    require_fp32(
        precision, f"for classifiers ({model} is a detector)", "drop --precision for this model"
    )
    _check_box_options(score_threshold, iou_threshold, max_detections)
    det, card = _load(model)
    if iou_threshold is not None:
        det.set_nms_iou(iou_threshold)
    threshold = score_threshold if score_threshold is not None else card_threshold(card)
    out_dir = Path(save_dir) if save_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    expanded = expand_sources(items)
    pending: list[tuple[int, str, Image.Image]] = []

    def flush() -> Iterator[dict[str, Any]]:
        found = detect_images(det, [im for _, _, im in pending], card.preprocessing)
        for (i, src, im), f in zip(pending, found, strict=True):
            record: dict[str, Any] = {
                "source": src,
                "detections": detection_records(f, card.classes, threshold)[:max_detections],
            }
            if out_dir is not None:
                record["saved"] = _save(out_dir, i, src, im, record["detections"])
            yield record
        pending.clear()

    for i, src in enumerate(expanded):
        if isinstance(src, ImgrecError):
            yield from flush()
            yield {
                "source": str(getattr(src, "source", "")),
                "error": {"code": src.code, "message": str(src)},
            }
            continue
        if Path(src).suffix.lower() in VIDEO_SUFFIXES:
            yield from flush()
            yield predict_video(src, det, card, out_dir=out_dir or Path("."), threshold=threshold)
            continue
        try:
            pending.append((i, src, load_image(src)))
        except ImgrecError as exc:
            yield from flush()
            yield {"source": src, "error": {"code": exc.code, "message": str(exc)}}
            continue
        if len(pending) >= batch_size:
            yield from flush()
    yield from flush()


def _check_box_options(score: float | None, iou: float | None, max_detections: int) -> None:
    for name, value in (("score_threshold (--conf)", score), ("iou_threshold (--iou)", iou)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name} must be within 0-1, got {value}", hint="e.g. 0.5")
    if max_detections < 1:
        raise ConfigError(
            f"max_detections (--max-det) must be >= 1, got {max_detections}", hint="e.g. 100"
        )


def _save(
    out_dir: Path, index: int, source: str, image: Image.Image, detections: list[dict[str, Any]]
) -> str:
    from imgrec.data.sources import saved_name

    path = out_dir / saved_name(index, source).replace(".jpg", ".png")
    draw_detections(image, detections).save(path)  # PNG: drawn pixels stay exact
    return str(path)


def predict_video(
    source: str, det: Detector, card: Any, *, out_dir: Path, threshold: float
) -> dict[str, Any]:
    """Annotate every frame of a video file; returns the record with ``video`` and ``fps``."""
    import cv2

    from imgrec.data.sources import saved_name
    from imgrec.tasks.detect.evaluate import detect_images

    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        err = StorageError(f"cannot open video {source!r}", hint="an mp4/avi file OpenCV can read")
        return {"source": source, "error": {"code": "unsupported_media_type", "message": str(err)}}
    rate = capture.get(cv2.CAP_PROP_FPS) or 25.0
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / saved_name(0, source).replace(".jpg", ".mp4")
    writer = None
    frames: list[dict[str, Any]] = []
    spent = 0.0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            image = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            start = time.perf_counter()
            found = detect_images(det, [image], card.preprocessing)[0]
            spent += time.perf_counter() - start
            detections = detection_records(found, card.classes, threshold)
            frames.append({"frame": len(frames), "detections": detections})
            drawn = cv2.cvtColor(np.asarray(draw_detections(image, detections)), cv2.COLOR_RGB2BGR)
            if writer is None:
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]
                writer = cv2.VideoWriter(str(out_path), fourcc, rate, (image.width, image.height))
            writer.write(drawn)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    fps = len(frames) / spent if spent else 0.0
    return {
        "source": source,
        "video": str(out_path),
        "n_frames": len(frames),
        "fps": round(fps, 2),
        "frames": frames,
    }
