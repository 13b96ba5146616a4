"""The results of the validation suite: one ``CheckResult`` per check, rendered as text and HTML.

Every value that comes from the data (paths, labels, error messages) is HTML-escaped before it
is put in the page (BAD-INPUTS row 9).
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from imgrec import storage
from imgrec.mlops.validate_explain import explain

MAX_EXAMPLES = 20


def _plain(value: Any) -> Any:
    """numpy scalars and other oddities -> JSON-able Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@dataclass
class CheckResult:
    """One expectation's outcome with the offending rows (at most ``MAX_EXAMPLES``)."""

    name: str
    severity: str  # "critical" or "warning"
    frame: str
    expectation: str
    kwargs: dict[str, Any]
    success: bool
    observed: Any = None
    unexpected_count: int = 0
    unexpected_percent: float = 0.0
    examples: list[Any] = field(default_factory=list)

    @classmethod
    def from_gx(cls, r: Any, frame: str, thresholds: Any) -> CheckResult:
        """Build from a GX ``ExpectationValidationResult``."""
        cfg = r.expectation_config
        meta = cfg.meta or {}
        res = r.result or {}
        kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id",)}
        examples = res.get("unexpected_index_list") or res.get("partial_unexpected_list") or []
        return cls(
            name=str(meta.get("check", cfg.type)),
            severity=str(meta.get("severity", "critical")),
            frame=frame,
            expectation=str(cfg.type),
            kwargs=_plain(kwargs),
            success=bool(r.success),
            observed=_plain(res.get("observed_value")),
            unexpected_count=int(res.get("unexpected_count") or 0),
            unexpected_percent=float(res.get("unexpected_percent") or 0.0),
            examples=_plain(list(examples)[:MAX_EXAMPLES]),
        )

    @property
    def message(self) -> str:
        """A readable sentence saying what failed (empty on success)."""
        return "" if self.success else explain(self)


@dataclass
class ValidationReport:
    """All check results plus what was validated."""

    checks: list[CheckResult]
    fingerprint: str
    source: str
    n_rows: int
    thresholds: dict[str, Any]

    @property
    def success(self) -> bool:
        """False when any critical check failed."""
        return not self.critical_failures()

    def critical_failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success and c.severity == "critical"]

    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success and c.severity != "critical"]

    def critical_reasons(self) -> list[str]:
        return [f"{c.name}: {c.message}" for c in self.critical_failures()]

    @property
    def summary(self) -> str:
        """A short Markdown summary: verdict, then one line per failed check."""
        verdict = "PASSED" if self.success else "FAILED"
        passed = sum(c.success for c in self.checks)
        lines = [
            f"## Data validation {verdict}",
            "",
            f"{passed}/{len(self.checks)} checks passed on {self.n_rows} images "
            f"from `{self.source}` ({self.fingerprint}).",
            "",
        ]
        for c in self.critical_failures():
            lines.append(f"- **critical** `{c.name}`: {c.message}")
        for c in self.warnings():
            lines.append(f"- warning `{c.name}`: {c.message}")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "source": self.source,
            "fingerprint": self.fingerprint,
            "n_rows": self.n_rows,
            "thresholds": _plain(self.thresholds),
            "critical_failures": [c.name for c in self.critical_failures()],
            "warnings": [c.name for c in self.warnings()],
            "checks": [{**asdict(c), "message": c.message} for c in self.checks],
        }

    def html(self) -> str:
        """A self-contained page: the verdict and a table of every check (escaped)."""
        e = html.escape
        rows = []
        for c in self.checks:
            status = "pass" if c.success else ("FAIL" if c.severity == "critical" else "warn")
            examples = "<br>".join(e(json.dumps(x, default=str)) for x in c.examples[:5])
            rows.append(
                f"<tr class='{status.lower()}'><td>{e(c.name)}</td><td>{e(c.severity)}</td>"
                f"<td>{status}</td><td><code>{e(c.expectation)}</code><br>"
                f"<small>{e(json.dumps(c.kwargs, default=str))}</small></td>"
                f"<td>{e(json.dumps(c.observed, default=str))}</td>"
                f"<td>{c.unexpected_count}</td><td>{e(c.message)}<br><small>{examples}</small>"
                "</td></tr>"
            )
        verdict = "PASSED" if self.success else "FAILED"
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>Data validation</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}"
            "tr.fail{background:#fdd}tr.warn{background:#ffd}tr.pass{background:#efe}</style>"
            f"</head><body><h1>Data validation {verdict}</h1>"
            f"<p>Source <code>{e(self.source)}</code>, {self.n_rows} images, "
            f"fingerprint <code>{e(self.fingerprint)}</code>. Great Expectations suite "
            f"over the dataset manifest.</p><table><tr><th>check</th><th>severity</th>"
            "<th>result</th><th>expectation</th><th>observed</th><th>unexpected</th>"
            f"<th>details</th></tr>{''.join(rows)}</table>"
            f"<h2>Thresholds</h2><pre>{e(json.dumps(_plain(self.thresholds), indent=1))}</pre>"
            "</body></html>"
        )

    def write(self, out_dir: str) -> dict[str, str]:
        """Write ``validation.html``, ``validation.json`` and ``summary.md`` into ``out_dir``."""
        paths = {
            "html": storage.join(out_dir, "validation.html"),
            "json": storage.join(out_dir, "validation.json"),
            "summary": storage.join(out_dir, "summary.md"),
        }
        storage.write_text(paths["html"], self.html())
        storage.write_text(paths["json"], json.dumps(self.to_dict(), indent=1, default=str))
        storage.write_text(paths["summary"], self.summary)
        return paths
