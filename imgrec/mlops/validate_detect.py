"""The Great Expectations suite for a detection manifest (``task=detect``).

Four frames: ``rows`` (one per image), ``boxes`` (one per box: its class name), ``issues``
(one per problem the dataset reader found: BAD-INPUTS rows 12-14, with file and line) and
``splits``. Checks, besides the shared ones (``row_count``, ``split_names``,
``required_splits``, ``readable_files``, ``image_width``/``image_height``,
``duplicate_hashes``, ``train_val_leakage``, ``split_ratio``):

* ``known_labels``: every box class is in ``labels`` (default: the dataset's classes);
* ``label_errors`` (critical): label problems that made the reader skip an image or an entry
  (wrong columns, non-numbers, unknown classes, malformed boxes, duplicate ids, missing files);
* ``box_fixes`` (a warning by default, in ``warn_only``): boxes the reader clipped to the
  image or dropped for having no area, declared sizes that differ from the file;
* ``images_with_boxes``: train and val each hold at least one box.
"""

from __future__ import annotations

from typing import Any

from imgrec.mlops.detect_steps import DetectionManifest
from imgrec.mlops.validate import (
    ValidationThresholds,
    _gx,
    _suite_spec,
    finish_report,
    image_rows,
    run_checks,
)
from imgrec.mlops.validate_explain import EXPLANATIONS
from imgrec.mlops.validate_report import CheckResult, ValidationReport

# Reader actions after which an image or entry is not used at all: data errors, not fixes.
ERROR_ACTIONS = ("image_skipped", "duplicate_dropped", "removed_from_val")
_SHARED = (
    "row_count",
    "split_names",
    "required_splits",
    "readable_files",
    "image_width",
    "image_height",
    "duplicate_hashes",
    "train_val_leakage",
    "split_ratio",
)


def detection_frames(manifest: DetectionManifest) -> dict[str, Any]:
    """The ``rows``, ``boxes``, ``issues`` and ``splits`` frames of the detection suite."""
    import pandas as pd

    rows, ok = image_rows(manifest)
    boxes = [
        {"path": r["path"], "split": r["split"], "label": name}
        for r in manifest.rows
        if r["readable"]
        for name in filter(None, str(r["labels"]).split(";"))
    ]
    issues = [
        {
            "code": str(i.get("code", "")),
            "file": str(i.get("file", "")),
            "line": str(i.get("line", i.get("image_id", ""))),
            "action": str(i.get("action", "")),
            "message": str(i.get("message", "")),
            "kind": "error" if i.get("action") in ERROR_ACTIONS else "fix",
        }
        for i in manifest.issues.get("issues", [])
    ]
    total = max(len(ok), 1)
    splits = sorted(set(rows["split"]) | {"train", "val"})
    split_rows = [
        {
            "split": s,
            "count": int((ok["split"] == s).sum()),
            "fraction": float((ok["split"] == s).sum() / total),
            "boxes": int(ok.loc[ok["split"] == s, "n_boxes"].astype(int).sum()),
        }
        for s in splits
    ]
    issue_cols = ["code", "file", "line", "action", "message", "kind"]
    return {
        "rows": rows,
        "boxes": pd.DataFrame(boxes, columns=["path", "split", "label"]),
        "issues": pd.DataFrame(issues, columns=issue_cols),
        "splits": pd.DataFrame(split_rows, columns=["split", "count", "fraction", "boxes"]),
    }


def detection_suite(
    t: ValidationThresholds, classes: list[str]
) -> list[tuple[str, str, Any, list[str]]]:
    """(check, frame, expectation, index columns) of the detection suite."""
    E = _gx().expectations
    shared = [s for s in _suite_spec(t, classes) if s[0] in _SHARED]
    labels = list(t.labels) or classes
    in_train_val = {"row_condition": 'split in ["train", "val"]', "condition_parser": "pandas"}
    return [
        *shared,
        (
            "known_labels",
            "boxes",
            E.ExpectColumnValuesToBeInSet(column="label", value_set=labels),
            ["path", "label"],
        ),
        (
            "label_errors",
            "issues",
            E.ExpectColumnValuesToBeInSet(column="kind", value_set=["fix"]),
            ["code", "file", "line", "message"],
        ),
        (
            "box_fixes",
            "issues",
            E.ExpectColumnValuesToBeInSet(column="kind", value_set=["error"]),
            ["code", "file", "line", "message"],
        ),
        (
            "images_with_boxes",
            "splits",
            E.ExpectColumnValuesToBeBetween(column="boxes", min_value=1, **in_train_val),
            ["split", "boxes"],
        ),
    ]


def validate_detection_manifest(
    manifest: DetectionManifest,
    thresholds: ValidationThresholds | None = None,
    *,
    out_dir: str | None = None,
    raise_on_failure: bool = True,
) -> ValidationReport:
    """Validate a detection manifest; same reports and error as ``validate_manifest``."""
    t = thresholds or ValidationThresholds()
    frames = detection_frames(manifest)
    checks = run_checks(frames, detection_suite(t, manifest.classes), t)
    return finish_report(manifest, checks, t, out_dir, raise_on_failure)


def _issues(c: CheckResult) -> str:
    parts = []
    for e in c.examples[:3]:
        if isinstance(e, dict):
            where = f"{e.get('file')}" + (f":{e.get('line')}" if e.get("line") else "")
            parts.append(f"{e.get('code')} in {where} ({e.get('message')})")
    more = c.unexpected_count - len(parts)
    return "; ".join(parts) + (f" and {more} more" if more > 0 else "")


EXPLANATIONS.update(
    {
        "label_errors": lambda c: (
            f"{c.unexpected_count} label problems made the reader skip images or entries: "
            + _issues(c)
        ),
        "box_fixes": lambda c: f"{c.unexpected_count} boxes were clipped or dropped: " + _issues(c),
        "images_with_boxes": lambda c: (
            "no boxes in split " + ", ".join(str(e.get("split")) for e in c.examples)
        ),
    }
)
