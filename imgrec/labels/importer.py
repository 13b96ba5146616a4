"""Human labels -> an imgrec dataset: ImageFolder for classes, COCO for boxes.

Two sources, one result (docs/labels.md)::

    import_labels("export.json", "captures/", "new-data", classes=classes)   # Label Studio
    import_labels("labels.csv", "captures/", "new-data", classes=classes)    # fingerprint,label

Every item is checked on its own; a refused item (unknown image, unknown class, empty or
cancelled annotation) is reported with its reason. By default any refusal stops the import
before anything is written (``labels_refused``); ``skip_refused=True`` writes the good items
and returns the refusals. The same image labelled twice is kept once when the labels agree
and is an error (``labels_conflict``) when they do not.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from imgrec import storage
from imgrec.data.captures import captured_images, normalize_fingerprint
from imgrec.errors import LabelError
from imgrec.labels.labelstudio import Labelled, Refusal, read_export

CSV_HEADER = ("fingerprint", "label")


def read_csv_labels(text: str, classes: list[str]) -> tuple[list[Labelled], list[Refusal]]:
    """``fingerprint,label`` rows (a header line is optional) -> labelled images, refusals."""
    known = set(classes)
    good: list[Labelled] = []
    refused: list[Refusal] = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or (n == 1 and tuple(c.strip().lower() for c in row) == CSV_HEADER):
            continue
        item = f"line {n}"
        if len(row) != 2:
            refused.append(Refusal(item, f"expected 2 columns fingerprint,label, got {len(row)}"))
            continue
        fp, label = normalize_fingerprint(row[0]), row[1].strip()
        if fp is None:
            refused.append(Refusal(item, f"{row[0]!r} is not a fingerprint (sha256:<16 hex>)"))
        elif label not in known:
            refused.append(Refusal(item, f"unknown class {label!r}"))
        else:
            good.append(Labelled(fp, item, label=label))
    return good, refused


def _key(item: Labelled) -> Any:
    return item.label if item.label is not None else sorted(item.boxes)


def merge_duplicates(items: list[Labelled]) -> list[Labelled]:
    """One item per fingerprint: identical labels kept once, different ones an error."""
    first: dict[str, Labelled] = {}
    for item in items:
        seen = first.setdefault(item.fingerprint, item)
        if seen is not item and _key(seen) != _key(item):
            shown = seen.label if seen.label is not None else f"{len(seen.boxes)} boxes"
            other = item.label if item.label is not None else f"{len(item.boxes)} boxes"
            raise LabelError(
                f"conflicting labels for {item.fingerprint}: {shown!r} ({seen.item}) vs "
                f"{other!r} ({item.item})",
                hint="keep one label per image, then import again",
                code="labels_conflict",
            )
    return list(first.values())


def _check_classes(classes: list[str]) -> None:
    bad = [c for c in classes if not c or "/" in c or "\\" in c or c.startswith(".")]
    if bad:
        raise LabelError(
            f"class names {bad!r} cannot be folder names",
            hint="class names must not be empty, contain slashes or start with a dot",
        )


def _target_empty(out: str) -> None:
    if storage.exists(out) and (not storage.is_dir(out) or storage.list_files(out)):
        raise LabelError(
            f"{out} already exists and is not empty",
            hint="import into a new folder (one per labelling round)",
        )


def _write_imagefolder(items: list[Labelled], images: dict[str, str], out: str) -> None:
    for item in items:
        src = images[item.fingerprint]
        assert item.label is not None
        storage.write_bytes(
            storage.join(out, item.label, storage.basename(src)), storage.read_bytes(src)
        )


def _write_coco(items: list[Labelled], images: dict[str, str], out: str, classes: list[str]):  # type: ignore[no-untyped-def]
    ids = {c: i + 1 for i, c in enumerate(classes)}
    coco: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": ids[c], "name": c} for c in classes],
    }
    for n, item in enumerate(items, start=1):
        src = images[item.fingerprint]
        name = storage.basename(src)
        storage.write_bytes(storage.join(out, "images", "train", name), storage.read_bytes(src))
        coco["images"].append(
            {"id": n, "file_name": name, "width": item.width, "height": item.height}
        )
        for x1, y1, x2, y2, label in item.boxes:
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": n,
                    "category_id": ids[label],
                    "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                    "area": round((x2 - x1) * (y2 - y1), 2),
                    "iscrowd": 0,
                }
            )
    storage.write_text(storage.join(out, "annotations", "train.json"), json.dumps(coco))


def read_labels(source: str, classes: list[str]) -> tuple[list[Labelled], list[Refusal]]:
    """Parse a Label Studio JSON export or a ``fingerprint,label`` CSV (by content)."""
    text = storage.read_text(source)
    if text.lstrip().startswith("["):
        try:
            tasks = json.loads(text)
        except ValueError as exc:
            raise LabelError(
                f"{source} is not valid JSON ({exc})",
                hint="export from Label Studio with Export -> JSON",
            ) from exc
        return read_export(tasks, classes)
    if text.lstrip().startswith("{"):
        raise LabelError(
            f"{source} is a JSON object, not Label Studio's JSON export (a list of tasks)",
            hint="export with Export -> JSON (not JSON-MIN or COCO)",
        )
    return read_csv_labels(text, classes)


def import_labels(
    source: str,
    capture: str,
    out: str,
    *,
    classes: list[str],
    skip_refused: bool = False,
) -> dict[str, Any]:
    """Write the labelled captured images of ``source`` as a dataset under ``out``.

    Returns ``{"task", "imported", "classes": {name: n}, "refused": [str], "out"}``. Raises
    ``LabelError`` (``labels_refused``) when items were refused and ``skip_refused`` is off,
    (``labels_conflict``) for contradicting duplicates, (``invalid_labels``) otherwise.
    """
    _check_classes(classes)
    items, refused = read_labels(source, classes)
    images = captured_images(capture)
    known: list[Labelled] = []
    for item in items:
        if item.fingerprint in images:
            known.append(item)
        else:
            refused.append(
                Refusal(item.item, f"unknown image {item.fingerprint} (not in {capture})")
            )
    items = merge_duplicates(known)
    if refused and not skip_refused:
        error = LabelError(
            f"{len(refused)} of {len(items) + len(refused)} labelled items refused; first: "
            f"{refused[0]}",
            hint="fix or drop them (each is listed above), or pass --skip-refused",
            code="labels_refused",
        )
        error.refused = [str(r) for r in refused]  # type: ignore[attr-defined]
        raise error
    if not items:
        raise LabelError(f"no usable labels in {source}", hint="label some images first")
    task = "detect" if any(i.boxes for i in items) else "classify"
    if task == "detect" and any(i.label is not None for i in items):
        raise LabelError(
            f"{source} mixes class choices and rectangles",
            hint="import a classification and a detection project separately",
        )
    _target_empty(out)
    if task == "detect":
        _write_coco(items, images, out, classes)
    else:
        _write_imagefolder(items, images, out)
    counts: dict[str, int] = {}
    for item in items:
        for name in [item.label] if item.label is not None else [b[4] for b in item.boxes]:
            counts[str(name)] = counts.get(str(name), 0) + 1
    return {
        "task": task,
        "imported": len(items),
        "classes": dict(sorted(counts.items())),
        "refused": [str(r) for r in refused],
        "out": out,
    }
