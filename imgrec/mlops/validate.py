"""Validate a dataset manifest with a Great Expectations suite before anything is trained.

The manifest (see :mod:`imgrec.mlops.ingest`) becomes three pandas frames validated in an
ephemeral GX context: ``rows`` (one per image), ``classes`` (one per split x class, zero-filled
so a class missing from a split shows up as count 0) and ``splits`` (one per split). Each check
has a stable name, a severity (``critical`` stops the pipeline, ``warning`` is reported) and a
threshold from :class:`ValidationThresholds`::

    report = validate_manifest(manifest, ValidationThresholds(max_unreadable_fraction=0.1),
                               out_dir="runs/validate")
    report.success, report.summary      # raises ValidationFailedError on a critical failure

Checks: ``row_count``, ``known_labels``, ``split_names``, ``required_splits``,
``readable_files``, ``image_width``, ``image_height``, ``duplicate_hashes``,
``train_val_leakage`` (an image in two splits), ``class_in_every_split``, ``class_balance``,
``split_ratio``. The report is written as ``validation.html`` (escaped), ``validation.json``
(GX's result) and ``summary.md``.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any

from imgrec import storage
from imgrec.errors import ConfigError, ValidationFailedError
from imgrec.mlops.ingest import DatasetManifest
from imgrec.mlops.validate_report import CheckResult, ValidationReport

__all__ = [
    "CHECK_NAMES",
    "CheckResult",
    "ValidationReport",
    "ValidationThresholds",
    "validate_manifest",
]


@dataclass(frozen=True)
class ValidationThresholds:
    """Limits of the validation suite; each is a pipeline parameter of the same name."""

    labels: tuple[str, ...] = ()
    """The known label set; empty means the classes found by ingest (including empty folders)."""
    min_images: int = 10
    """Fewest usable rows in the whole dataset."""
    max_unreadable_fraction: float = 0.05
    """Largest share of files that cannot be decoded."""
    min_width: int = 8
    min_height: int = 8
    max_width: int = 20_000
    max_height: int = 20_000
    min_images_per_class: int = 1
    """Fewest images of each class in each split (catches a class missing from val)."""
    max_class_imbalance: float = 10.0
    """Largest ratio between the biggest and the smallest class within one split."""
    min_val_fraction: float = 0.05
    max_val_fraction: float = 0.5
    warn_only: tuple[str, ...] = ("duplicate_hashes", "box_fixes")
    """Checks whose failure is reported but does not stop the pipeline."""

    def __post_init__(self) -> None:
        unknown = set(self.warn_only) - set(CHECK_NAMES + DETECTION_CHECK_NAMES)
        if unknown:
            raise ConfigError(
                f"unknown validation checks in warn_only: {sorted(unknown)}",
                hint=f"known checks: {', '.join(CHECK_NAMES + DETECTION_CHECK_NAMES)}",
            )
        if not 0.0 <= self.max_unreadable_fraction <= 1.0:
            raise ConfigError(
                f"max_unreadable_fraction must be in [0, 1], got {self.max_unreadable_fraction}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ValidationThresholds:
        """Build from a dict (pipeline parameters); unknown keys are rejected with the list."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(
                f"unknown validation thresholds {sorted(unknown)}",
                hint=f"known: {', '.join(sorted(known))}",
            )
        clean = dict(values)
        for key in ("labels", "warn_only"):
            if key in clean:
                v = clean[key]
                clean[key] = tuple(v.split(",") if isinstance(v, str) else v)
                clean[key] = tuple(x.strip() for x in clean[key] if str(x).strip())
        return cls(**clean)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CHECK_NAMES = (
    "row_count",
    "known_labels",
    "split_names",
    "required_splits",
    "readable_files",
    "image_width",
    "image_height",
    "duplicate_hashes",
    "train_val_leakage",
    "class_in_every_split",
    "class_balance",
    "split_ratio",
)
DETECTION_CHECK_NAMES = ("label_errors", "box_fixes", "images_with_boxes")
"""Extra checks of the detection suite (``imgrec.mlops.validate_detect``)."""


# --- frames --------------------------------------------------------------------------------
def image_rows(manifest: Any) -> tuple[Any, Any]:
    """The manifest's per-image frame with ``hash_splits`` (how many splits hold each file's
    bytes: > 1 is leakage), and its readable rows. Shared by the classify and detect suites."""
    rows = manifest.to_dataframe()
    rows["readable"] = rows["readable"].astype(bool)
    ok = rows[rows["readable"]]
    per_hash = ok.groupby("sha256")["split"].nunique()
    rows["hash_splits"] = rows["sha256"].map(per_hash).fillna(1).astype(int)
    return rows, ok


def _frames(manifest: DatasetManifest) -> dict[str, Any]:
    """The ``rows``, ``classes`` and ``splits`` frames the suite runs on."""
    import pandas as pd

    rows, ok = image_rows(manifest)
    splits = sorted(set(rows["split"]) | {"train", "val"})
    classes = manifest.classes
    counts = ok.groupby(["split", "label"]).size()
    class_rows = []
    for split in splits:
        split_counts = [int(counts.get((split, c), 0)) for c in classes]
        biggest = max(split_counts, default=0)
        for c, n in zip(classes, split_counts, strict=True):
            class_rows.append(
                {
                    "split": split,
                    "label": c,
                    "count": n,
                    "imbalance": (biggest / n) if n else 0.0,
                }
            )
    total = max(len(ok), 1)
    split_rows = [
        {
            "split": s,
            "count": int((ok["split"] == s).sum()),
            "fraction": (ok["split"] == s).sum() / total,
        }
        for s in splits
    ]
    return {
        "rows": rows,
        "classes": pd.DataFrame(class_rows, columns=["split", "label", "count", "imbalance"]),
        "splits": pd.DataFrame(split_rows, columns=["split", "count", "fraction"]),
    }


# --- the suite -----------------------------------------------------------------------------
_READABLE = "readable == True"


def _suite_spec(
    t: ValidationThresholds, classes: list[str]
) -> list[tuple[str, str, Any, list[str]]]:
    """(check name, frame, expectation, index columns naming offending rows)."""
    gx = _gx()

    E = gx.expectations
    readable = {"row_condition": _READABLE, "condition_parser": "pandas"}
    labels = list(t.labels) or classes
    return [
        ("row_count", "rows", E.ExpectTableRowCountToBeBetween(min_value=t.min_images), []),
        (
            "known_labels",
            "rows",
            E.ExpectColumnValuesToBeInSet(column="label", value_set=labels),
            ["path"],
        ),
        (
            "split_names",
            "rows",
            E.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "val", "test"]),
            ["path"],
        ),
        (
            "required_splits",
            "rows",
            E.ExpectColumnDistinctValuesToContainSet(column="split", value_set=["train", "val"]),
            [],
        ),
        (
            "readable_files",
            "rows",
            E.ExpectColumnValuesToBeInSet(
                column="readable", value_set=[True], mostly=1.0 - t.max_unreadable_fraction
            ),
            ["path", "error"],
        ),
        (
            "image_width",
            "rows",
            E.ExpectColumnValuesToBeBetween(
                column="width", min_value=t.min_width, max_value=t.max_width, **readable
            ),
            ["path"],
        ),
        (
            "image_height",
            "rows",
            E.ExpectColumnValuesToBeBetween(
                column="height", min_value=t.min_height, max_value=t.max_height, **readable
            ),
            ["path"],
        ),
        (
            "duplicate_hashes",
            "rows",
            E.ExpectColumnValuesToBeUnique(column="sha256", **readable),
            ["path", "split"],
        ),
        (
            "train_val_leakage",
            "rows",
            E.ExpectColumnValuesToBeBetween(column="hash_splits", max_value=1, **readable),
            ["path", "split"],
        ),
        (
            "class_in_every_split",
            "classes",
            E.ExpectColumnValuesToBeBetween(column="count", min_value=t.min_images_per_class),
            ["split", "label"],
        ),
        (
            "class_balance",
            "classes",
            E.ExpectColumnValuesToBeBetween(
                column="imbalance",
                max_value=t.max_class_imbalance,
                row_condition="count > 0",
                condition_parser="pandas",
            ),
            ["split", "label"],
        ),
        (
            "split_ratio",
            "splits",
            E.ExpectColumnValuesToBeBetween(
                column="fraction",
                min_value=t.min_val_fraction,
                max_value=t.max_val_fraction,
                row_condition='split == "val"',
                condition_parser="pandas",
            ),
            ["split"],
        ),
    ]


def _gx() -> Any:
    """``great_expectations``, imported without its optional-dependency import warnings."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    with warnings.catch_warnings():
        # google-api-core (an optional GX extra) warns about grpcio-status at import time.
        warnings.simplefilter("ignore", ImportWarning)
        import great_expectations as gx
    return gx


def _context() -> Any:
    """An in-memory GX context without progress bars or usage statistics."""
    gx = _gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        analytics_enabled=False,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def run_suite(manifest: DatasetManifest, thresholds: ValidationThresholds) -> list[CheckResult]:
    """Run every check of the suite on ``manifest``; returns one result per check."""
    return run_checks(_frames(manifest), _suite_spec(thresholds, manifest.classes), thresholds)


def run_checks(
    frames: dict[str, Any],
    spec: list[tuple[str, str, Any, list[str]]],
    thresholds: ValidationThresholds,
) -> list[CheckResult]:
    """Run the expectations of ``spec`` (check, frame name, expectation, index columns) on
    ``frames`` in one ephemeral GX context; results in ``CHECK_NAMES`` order."""
    gx = _gx()

    ctx = _context()
    source = ctx.data_sources.add_pandas("manifest")
    out: list[CheckResult] = []
    for frame_name, frame in frames.items():
        checks = [s for s in spec if s[1] == frame_name]
        batch = source.add_dataframe_asset(frame_name).add_batch_definition_whole_dataframe("all")
        index_cols = sorted({c for *_, cols in checks for c in cols})
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"imgrec_manifest_{frame_name}"))
        for name, _, expectation, _ in checks:
            expectation.meta = {"check": name, "severity": _severity(name, thresholds)}
            suite.add_expectation(expectation)
        definition = ctx.validation_definitions.add(
            gx.ValidationDefinition(data=batch, suite=suite, name=f"validate_{frame_name}")
        )
        result = definition.run(
            batch_parameters={"dataframe": frame},
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": index_cols,
                "return_unexpected_index_query": False,
            },
        )
        for r in result.results:
            out.append(CheckResult.from_gx(r, frame_name, thresholds))
    order = {n: i for i, n in enumerate(CHECK_NAMES + DETECTION_CHECK_NAMES)}
    return sorted(out, key=lambda c: order.get(c.name, len(order)))


def _severity(name: str, thresholds: ValidationThresholds) -> str:
    return "warning" if name in thresholds.warn_only else "critical"


def validate_manifest(
    manifest: DatasetManifest,
    thresholds: ValidationThresholds | None = None,
    *,
    out_dir: str | None = None,
    raise_on_failure: bool = True,
) -> ValidationReport:
    """Validate ``manifest``; write the reports to ``out_dir``; raise on critical failures.

    Raises ``ValidationFailedError`` (code ``validation_failed``) whose message is the short
    summary, after the reports are written, when a critical check fails and
    ``raise_on_failure`` is true.
    """
    t = thresholds or ValidationThresholds()
    return finish_report(manifest, run_suite(manifest, t), t, out_dir, raise_on_failure)


def finish_report(
    manifest: Any,
    checks: list[CheckResult],
    t: ValidationThresholds,
    out_dir: str | None,
    raise_on_failure: bool,
) -> ValidationReport:
    """Build the report of ``checks``, write it to ``out_dir``, raise on critical failures."""
    report = ValidationReport(
        checks=checks,
        fingerprint=manifest.fingerprint,
        source=manifest.source,
        n_rows=len(manifest.rows),
        thresholds=t.to_dict(),
    )
    if out_dir is not None:
        report.write(out_dir)
    if raise_on_failure and not report.success:
        raise ValidationFailedError(
            f"data validation failed for {manifest.source}: "
            + "; ".join(report.critical_reasons()),
            hint=(
                f"see {storage.join(out_dir, 'validation.html')}"
                if out_dir
                else "fix the data or relax the thresholds"
            ),
        )
    return report


def report_summary_json(report: ValidationReport) -> str:
    """The report as one JSON document (the pipeline's Markdown/HTML artifacts use the rest)."""
    return json.dumps(report.to_dict(), indent=1, default=str)
