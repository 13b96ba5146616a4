"""Readable sentences for failed validation checks: ``explain(check)``.

``EXPLANATIONS`` maps a check name to a function of the ``CheckResult``; a suite with checks of
its own adds its sentences there (``imgrec.mlops.validate_detect`` does for its three). Kept
apart from the suites and the report so that both can use it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Check = Any  # an imgrec.mlops.validate_report.CheckResult


def explain(check: Check) -> str:
    """One readable sentence for a failed check (used by the summary and the error message)."""
    return EXPLANATIONS.get(check.name, _generic)(check)


def examples_text(check: Check, key: str = "path", n: int = 3) -> str:
    items = []
    for e in check.examples[:n]:
        if not isinstance(e, dict):
            items.append(str(e))
            continue
        code = str(e.get("error", "")).split(":", 1)[0]
        items.append(f"{e.get(key, e)} ({code})" if code else str(e.get(key, e)))
    more = check.unexpected_count - len(items)
    return ", ".join(items) + (f" and {more} more" if more > 0 else "")


def _generic(c: Check) -> str:
    return f"{c.name}: {c.unexpected_count} unexpected values (observed {c.observed})"


def _class_split(c: Check, what: str) -> str:
    parts = []
    for e in c.examples[:5]:
        parts.append(f"class {e.get('label')!r} {what.format(**e)} in {e.get('split')}")
    return "; ".join(parts)


EXPLANATIONS: dict[str, Callable[[Check], str]] = {
    "row_count": lambda c: f"only {c.observed} images (need >= {c.kwargs.get('min_value')})",
    "known_labels": lambda c: (
        f"{c.unexpected_count} {'boxes' if c.frame == 'boxes' else 'images'} have "
        f"{'classes' if c.frame == 'boxes' else 'labels'} outside the known set "
        f"({examples_text(c, 'label')})"
    ),
    "split_names": lambda c: (
        f"{c.unexpected_count} images have an unknown split ({examples_text(c, 'split')})"
    ),
    "required_splits": lambda c: f"splits found {c.observed}; need both train and val",
    "readable_files": lambda c: (
        f"{c.unexpected_percent:.0f}% of the files are unreadable "
        f"(limit {100 * (1 - float(c.kwargs.get('mostly', 1.0))):.0f}%): {examples_text(c)}"
    ),
    "image_width": lambda c: (
        f"{c.unexpected_count} images have a width outside "
        f"[{c.kwargs.get('min_value')}, {c.kwargs.get('max_value')}]: {examples_text(c)}"
    ),
    "image_height": lambda c: (
        f"{c.unexpected_count} images have a height outside "
        f"[{c.kwargs.get('min_value')}, {c.kwargs.get('max_value')}]: {examples_text(c)}"
    ),
    "duplicate_hashes": lambda c: (
        f"{c.unexpected_count} images share their content with another image: {examples_text(c)}"
    ),
    "train_val_leakage": lambda c: (
        f"{c.unexpected_count} images appear in more than one split (leakage): {examples_text(c)}"
    ),
    "class_in_every_split": lambda c: _class_split(c, "has {count} images"),
    "class_balance": lambda c: (
        _class_split(c, "is {imbalance:.1f}x smaller than the largest class")
        + f" (limit {c.kwargs.get('max_value')}x)"
    ),
    "split_ratio": lambda c: (
        f"the val split holds {_fraction(c)} of the images "
        f"(allowed {c.kwargs.get('min_value')}-{c.kwargs.get('max_value')})"
    ),
}


def _fraction(c: Check) -> str:
    vals = [e.get("fraction") for e in c.examples if isinstance(e, dict)]
    return f"{float(vals[0]):.0%}" if vals and vals[0] is not None else "an unexpected share"
