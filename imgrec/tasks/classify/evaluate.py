"""Evaluate a classifier on a dataset split: metrics (equal to scikit-learn's), pictures, report.

::

    from imgrec.tasks.classify.evaluate import evaluate

    metrics = evaluate("runs/a/model", "data/mnist5k", split="val", out_dir="runs/a")
    metrics["accuracy"], metrics["per_class"]["7"]["recall"]

With ``out_dir`` it writes ``metrics.json``, ``figures/*.png`` and ``report.html`` there (the
training run directory layout of docs/design.md). Data classes are matched to the model's
classes by name; metrics are over the model's classes, in the model's order.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgrec import storage
from imgrec.data.dataset import ClassificationData, ImageRecord, load_classification_data
from imgrec.data.images import decode_image, load_image
from imgrec.data.shards import Shard, ShardIndex, is_shards, read_index, read_shard
from imgrec.errors import DatasetError, ImageError, ImgrecError
from imgrec.evaluation import classification_metrics, reliability_data
from imgrec.evaluation.plots import Mistake, write_figures
from imgrec.evaluation.report import write_report
from imgrec.tasks.classify.batching import preprocessed_batches

log = logging.getLogger(__name__)

WORST_MISTAKES = 16  # pictures in the worst-mistakes grid


@dataclass
class Predictions:
    """Model outputs over a split: true labels, predictions and probabilities (model order)."""

    records: list[ImageRecord]  # the images that decoded, in order
    y_true: np.ndarray  # (N,) model class indices
    y_pred: np.ndarray  # (N,)
    probs: np.ndarray  # (N, C) float64
    failed: list[tuple[str, ImgrecError]]


def _load_model(model: Any) -> Any:
    if isinstance(model, (str, os.PathLike)):
        from imgrec.predictor import load_model

        return load_model(os.fspath(model))
    return model


def _load_data(data: Any, model: Any, val_fraction: float | None, seed: int | None) -> Any:
    if isinstance(data, ClassificationData | ShardIndex):
        return data
    if is_shards(data):
        return read_index(os.fspath(data))
    config: Mapping[str, Any] = getattr(getattr(model, "card", None), "config", None) or {}
    # a flat folder must be split exactly as in training: reuse the run's fraction and seed
    if val_fraction is None and isinstance(config.get("val_fraction"), float):
        val_fraction = config["val_fraction"]
    if seed is None:
        seed = int(config.get("seed", 0) or 0)
    return load_classification_data(
        os.fspath(data), val_fraction=val_fraction, seed=seed, scan=False
    )


def class_mapping(data_classes: Sequence[str], model_classes: Sequence[str]) -> np.ndarray:
    """Index into ``model_classes`` for each data class; unknown names raise ``DatasetError``."""
    position = {name: i for i, name in enumerate(model_classes)}
    missing = [c for c in data_classes if c not in position]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:10])
        known = ", ".join(repr(c) for c in list(model_classes)[:10])
        raise DatasetError(
            f"the data has classes the model does not know: {shown}"
            f"{' ...' if len(missing) > 10 else ''}",
            hint=f"evaluate on data with the model's classes ({known}"
            f"{', ...' if len(model_classes) > 10 else ''}), or retrain on this data",
        )
    return np.array([position[c] for c in data_classes], dtype=np.int64)


def predict_records(
    model: Any, records: Sequence[ImageRecord], *, batch_size: int = 64
) -> tuple[list[ImageRecord], np.ndarray, list[tuple[str, ImgrecError]]]:
    """Probabilities ``(N, C)`` for the records that decode; the others are returned as failed."""

    def load(record: ImageRecord) -> tuple[torch.Tensor, None]:
        return model.preprocess(load_image(record.path)), None

    kept: list[ImageRecord] = []
    failed: list[tuple[str, ImgrecError]] = []
    parts: list[np.ndarray] = []
    with torch.inference_mode():
        for chunk in preprocessed_batches(records, load, batch_size=batch_size):
            failed.extend((rec.path, err) for _, rec, err in chunk.failed)
            if not chunk.ok:
                continue
            logits = model.predict_batch(chunk.tensor)  # (B, C)
            parts.append(torch.softmax(logits.float(), dim=1).double().cpu().numpy())
            kept.extend(rec for _, rec, _ in chunk.ok)
    n_classes = len(model.classes)
    probs = np.concatenate(parts) if parts else np.zeros((0, n_classes))
    return kept, probs, failed


def predict_shards(
    model: Any, shards: Sequence[Shard], split: str, *, batch_size: int = 64
) -> tuple[list[ImageRecord], np.ndarray, list[tuple[str, ImgrecError]]]:
    """:func:`predict_records` for images streamed from tar shards (one pass, in order); a
    record's path is ``SHARD#KEY``."""
    kept: list[ImageRecord] = []
    failed: list[tuple[str, ImgrecError]] = []
    parts: list[np.ndarray] = []
    batch: list[torch.Tensor] = []

    def flush() -> None:
        logits = model.predict_batch(torch.stack(batch))  # (B, C)
        parts.append(torch.softmax(logits.float(), dim=1).double().cpu().numpy())
        batch.clear()

    with torch.inference_mode():
        for shard in shards:
            for key, data, label in read_shard(shard.uri):
                record = ImageRecord(f"{shard.uri}#{key}", label, split)
                try:
                    batch.append(model.preprocess(decode_image(data)))
                except ImageError as err:
                    failed.append((record.path, err))
                    continue
                kept.append(record)
                if len(batch) == batch_size:
                    flush()
        if batch:
            flush()
    probs = np.concatenate(parts) if parts else np.zeros((0, len(model.classes)))
    return kept, probs, failed


def evaluate(
    model: Any,
    data: Any,
    *,
    split: str = "val",
    batch_size: int = 64,
    out_dir: str | os.PathLike[str] | None = None,
    history: str | os.PathLike[str] | Sequence[Mapping[str, Any]] | None = None,
    val_fraction: float | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` (a model directory, pretrained name or loaded classifier) on ``data``.

    ``data`` is a dataset URI (folder, ``s3://`` prefix, CSV, tar shards with ``shards.json``)
    or a loaded ``ClassificationData`` or ``ShardIndex``.
    Returns the ``imgrec evaluate --json`` dict. With ``out_dir``: writes ``metrics.json``,
    ``figures/`` and ``report.html`` there; training curves come from ``history`` (default:
    ``out_dir/history.jsonl`` when present). Images that fail to decode are skipped and logged.
    """
    clf = _load_model(model)
    dataset = _load_data(data, clf, val_fraction, seed)
    if not dataset.counts().get(split):
        available = ", ".join(s for s, n in dataset.counts().items() if n) or "none"
        raise DatasetError(
            f"split {split!r} of {dataset.uri} has no images",
            hint=f"splits with images: {available}",
        )
    mapping = class_mapping(dataset.classes, clf.classes)
    if isinstance(dataset, ShardIndex):
        kept, probs, failed = predict_shards(clf, dataset.shards(split), split)
    else:
        kept, probs, failed = predict_records(clf, dataset.splits[split], batch_size=batch_size)
    for path, err in failed:
        log.warning("skipped %s: [%s] %s", path, err.code, err.message)
    if not kept:
        raise DatasetError(f"no image of split {split!r} could be decoded", hint="see the log")
    preds = Predictions(
        records=kept,
        y_true=mapping[np.array([r.label for r in kept], dtype=np.int64)],
        y_pred=probs.argmax(axis=1),
        probs=probs,
        failed=failed,
    )
    metrics = classification_metrics(preds.y_true, preds.y_pred, probs, classes=list(clf.classes))
    if out_dir is not None:
        write_outputs(
            Path(out_dir),
            metrics,
            preds,
            clf,
            history=history,
            context={
                "model": _describe_model(model, clf),
                "data": dataset.uri,
                "split": split,
                "images skipped (failed to decode)": len(failed),
            },
        )
    return metrics


def _describe_model(model: Any, clf: Any) -> str:
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    card = getattr(clf, "card", None)
    return str(getattr(card, "architecture", type(clf).__name__))


def worst_mistakes(
    preds: Predictions, classes: Sequence[str], k: int = WORST_MISTAKES
) -> list[Mistake]:
    """The ``k`` most confident wrong predictions, images reloaded, most confident first."""
    wrong = np.flatnonzero(preds.y_true != preds.y_pred)
    conf = preds.probs[wrong, preds.y_pred[wrong]]
    chosen = heapq.nlargest(k, zip(conf.tolist(), wrong.tolist(), strict=True))
    out = []
    for score, i in chosen:
        try:
            image = load_image(preds.records[i].path)
        except ImgrecError:
            continue  # changed on disk since; the grid just has one picture less
        out.append(Mistake(image, classes[preds.y_true[i]], classes[preds.y_pred[i]], score))
    return out


def write_outputs(
    out_dir: Path,
    metrics: dict[str, Any],
    preds: Predictions,
    clf: Any,
    *,
    history: str | os.PathLike[str] | Sequence[Mapping[str, Any]] | None = None,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``metrics.json``, ``figures/*.png`` and ``report.html`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    storage.write_text(str(out_dir / "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    if history is None and (out_dir / "history.jsonl").is_file():
        history = out_dir / "history.jsonl"
    confidence = preds.probs[np.arange(len(preds.y_pred)), preds.y_pred]
    figures = write_figures(
        out_dir / "figures",
        metrics,
        history=history if not isinstance(history, os.PathLike) else os.fspath(history),
        reliability=reliability_data(confidence, preds.y_true == preds.y_pred),
        mistakes=worst_mistakes(preds, list(clf.classes)),
    )
    title = f"imgrec evaluation: {context.get('model', '') if context else ''}"
    write_report(out_dir / "report.html", metrics, figures, title=title, context=context)
    return figures
