"""The closed loop's records: captured images, labels that came back, and their join with the
prediction log by fingerprint (docs/capture.md, docs/labels.md).

* captures: ``imgrec serve --capture DEST`` keeps ``DEST/<2 hex>/<16 hex>.<ext>``, named by the
  image's fingerprint in the prediction log (``sha256:<16 hex>``);
* labels: what ``imgrec label import`` writes (an ImageFolder ``OUT/<class>/<16 hex>.<ext>``)
  or a ``fingerprint,label`` CSV.

The model's guess for an image is its latest prediction-log record with that fingerprint
(:attr:`dashboard.predlog.LogIndex.known`)::

    queue = review_queue(captured_files("captures"), index.known, read_labels("labels/"))
    queue[0].confidence          # the least certain captured image first
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from imgrec.dashboard.predlog import Prediction
from imgrec.data.captures import captured_images, fingerprint_of_name, normalize_fingerprint
from imgrec.errors import NotFoundError

MAX_FILES = 100_000


def captured_files(root: str | None) -> dict[str, str]:
    """``{fingerprint: file URI}`` of the captured images under ``root`` (folder or s3://);
    ``{}`` when there is none yet."""
    if not root:
        return {}
    try:
        return captured_images(root)
    except NotFoundError:
        return {}


def read_labels(source: str | os.PathLike[str] | None) -> dict[str, str]:
    """``{fingerprint: label}`` from an imported ImageFolder or a ``fingerprint,label`` CSV;
    rows that name no fingerprint are skipped (``imgrec label import`` reports them)."""
    if not source:
        return {}
    path = Path(source)
    out: dict[str, str] = {}
    if path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace")
        for row in csv.reader(io.StringIO(text)):
            if len(row) >= 2 and (fp := normalize_fingerprint(row[0])):
                out[fp] = row[1].strip()
    elif path.is_dir():
        for folder in sorted(p for p in path.iterdir() if p.is_dir()):
            for item in folder.iterdir():
                if fp := fingerprint_of_name(item.name):
                    out[fp] = folder.name
                if len(out) >= MAX_FILES:
                    return out
    return out


@dataclass
class ReviewItem:
    fingerprint: str
    uri: str
    prediction: Prediction | None
    human: str | None

    @property
    def confidence(self) -> float | None:
        return self.prediction[1] if self.prediction else None


def review_queue(
    captures: dict[str, str],
    known: dict[str, Prediction],
    labels: dict[str, str],
    limit: int = 100,
) -> list[ReviewItem]:
    """Captured images, least certain first; those without a logged prediction last."""
    items = [ReviewItem(fp, path, known.get(fp), labels.get(fp)) for fp, path in captures.items()]

    def order(item: ReviewItem) -> tuple[int, float, str]:
        conf = item.confidence
        return (conf is None, conf if conf is not None else 0.0, item.fingerprint)

    return sorted(items, key=order)[:limit]


def accuracy_by_day(
    known: dict[str, Prediction], labels: dict[str, str]
) -> list[tuple[str, int, int]]:
    """``(day, labelled images with a prediction, of them predicted right)`` per UTC day of
    the prediction."""
    days: dict[str, list[int]] = {}
    for fp, human in labels.items():
        pred = known.get(fp)
        if pred is None:
            continue
        row = days.setdefault(pred[2][:10], [0, 0])
        row[0] += 1
        row[1] += int(pred[0] == human)
    return [(day, n, right) for day, (n, right) in sorted(days.items())]
