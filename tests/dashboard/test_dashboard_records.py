"""What the dashboard reads: the prediction log index, drift reports, pipeline runs, charts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dashboard_helpers import EVIL, hours_ago, log_record, write_drift_report, write_log

from imgrec.dashboard import charts
from imgrec.dashboard.drift import find_reports, signal_series
from imgrec.dashboard.predlog import LogIndex
from imgrec.dashboard.runs import Run, run_steps


def test_log_index_reads_only_what_was_appended(tmp_path: Path) -> None:
    log = tmp_path / "log" / "predictions-20261130.jsonl"
    write_log(log, [log_record(hours_ago(1), latency_ms=12.0) for _ in range(3)])
    write_log(log, [log_record(hours_ago(0), label="dog", confidence=0.3)])
    index = LogIndex(log.parent, cache_dir=tmp_path / "cache")
    assert index.refresh() == 4
    hours = dict(index.hours(last=2))
    assert hours["2026-11-30T11"].n == 3 and hours["2026-11-30T11"].latency_quantile(0.5) == 20
    assert hours["2026-11-30T12"].labels == {"dog": 1}
    assert hours["2026-11-30T12"].confidence_hist[3] == 1

    # a cut last line waits for the rest; a garbage line is counted, not fatal (row 31)
    with log.open("a") as fh:
        fh.write("not json\n" + json.dumps(log_record(hours_ago(0)))[:40])
    assert index.refresh() == 1 and index.bad_lines == 1 and index.total == 4
    with log.open("a") as fh:
        fh.write(json.dumps(log_record(hours_ago(0)))[40:] + "\n")
    assert index.refresh() == 1 and index.total == 5

    # a new process starts from the saved index and reads nothing again
    again = LogIndex(log.parent, cache_dir=tmp_path / "cache")
    assert again.total == 5 and again.pending_bytes() == 0 and again.refresh() == 0

    # a replaced (rotated) file is read from its start
    write_log(log, [log_record(hours_ago(0), confidence=float("nan"))], mode="w")
    assert again.refresh() == 1 and again.total == 1
    assert sum(dict(again.hours(1))["2026-11-30T12"].confidence_hist) == 0  # NaN not binned


def test_drift_reports_in_window_order_with_problems_listed(tmp_path: Path) -> None:
    sig = {"name": "confidence", "kind": "prediction", "method": "ks", "statistic": 0.1,
           "threshold": 0.01, "drifted": False}  # fmt: skip
    write_drift_report(tmp_path, "b", hours_ago(1), [{**sig, "p_value": 0.5}])
    write_drift_report(tmp_path, "a", hours_ago(0), [{**sig, "p_value": 0.001, "drifted": True}])
    write_drift_report(tmp_path, "c", hours_ago(2), [{**sig, "score": 0.2, "name": "emb"}])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "summary.json").write_text("[1, 2")
    reports = find_reports(tmp_path)
    assert [r.rel for r in reports] == ["broken", "c", "b", "a"]
    assert "unreadable" in reports[0].problem
    series = signal_series(reports)
    assert [(s.value, s.value_kind) for _, s in series["confidence"]] == [
        (0.5, "p_value"),
        (0.001, "p_value"),
    ]
    assert reports[-1].drift is True and series["emb"][0][1].value_kind == "score"

    small = write_drift_report(tmp_path, "small", hours_ago(3), [])
    doc = json.loads((small / "summary.json").read_text())
    doc.update(drift=False, verdict="window too small (n < 30): no verdict")
    (small / "summary.json").write_text(json.dumps(doc))
    first = find_reports(tmp_path)[1]
    assert first.rel == "small" and first.drift is None and "too small" in first.note


def test_run_steps_from_the_kfp_log(tmp_path: Path) -> None:
    run = tmp_path / "20261130-100000-000001"
    run.mkdir()
    (run / "pipeline.log").write_text(
        "10:00:00.000 - INFO - Executing task \x1b[96m'ingest'\x1b[0m\n"
        "    [KFP Executor] Executing task 'nested' is not a step line\n"
        "10:00:02.500 - INFO - Task \x1b[96m'ingest'\x1b[0m finished with status "
        "\x1b[92mSUCCESS\x1b[0m\n"
        "10:00:02.600 - INFO - Executing task 'train'\n"
        "10:00:09.600 - ERROR - Task 'train' finished with status FAILURE\n"
    )
    steps = run_steps(Run(run.name, run, {"status": "failed"}))
    assert [(s.name, s.status, s.seconds) for s in steps] == [
        ("ingest", "SUCCESS", 2.5),
        ("train", "FAILURE", 7.0),
    ]


def test_charts_escape_names_and_carry_values() -> None:
    svg = str(charts.line_chart([charts.Series(EVIL, [(0.0, "a", 0.25), (1.0, "b", 0.5)])]))
    assert "<img" not in svg and "&lt;img" in svg
    assert 'data-y="0.25"' in svg and 'data-y="0.5"' in svg
    heat = str(charts.heatmap([[1, 2], [3, 4]], [EVIL, "b"], [EVIL, "b"]))
    assert "<img" not in heat and heat.count('class="cell"') == 4
    bars = str(charts.stacked_bars([("01:00", {EVIL: 3.0, "dog": 1.0})]))
    assert "<img" not in bars and 'data-y="3"' in bars


@pytest.mark.parametrize("values", [[], [float("nan")]])
def test_charts_without_data_say_so(values: list[float]) -> None:
    pts = [(float(i), str(i), v) for i, v in enumerate(values)]
    assert "no data" in str(charts.line_chart([charts.Series("x", pts)]))
