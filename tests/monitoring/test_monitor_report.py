"""`imgrec monitor report` end to end on small windows: real reference, real Evidently,
the summary's schema, exit codes, and the bad references and versions of rows 32-35."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from monitor_fixtures import Monitored, log_records, write_log

from imgrec.cli import main
from imgrec.model_store import ModelStore
from imgrec.monitoring.reference import REFERENCE_FILE, reference_bytes

SUMMARY_KEYS = {"drift", "window", "model_version", "reference", "signals", "alpha"}
SIGNAL_KEYS = {"name", "kind", "method", "statistic", "p_value", "threshold", "drifted"}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_clean_and_shifted_windows(
    monitored: Monitored, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from evidently.core.report import Snapshot

    ref = monitored.reference
    clean = write_log(tmp_path / "clean" / "predictions-20261130.jsonl", log_records(ref, 120))
    code, out, _ = run(
        capsys,
        "monitor",
        "report",
        "--log",
        str(clean.parent),
        "--reference",
        str(monitored.model),
        "--out",
        str(tmp_path / "r1"),
        "--json",
        "--fail-on-drift",
    )
    summary = json.loads(out)
    assert code == 0 and summary["drift"] is False and summary["verdict"] == "no drift"
    assert set(summary) >= SUMMARY_KEYS and summary["window"]["n"] == 120
    assert all(set(s) >= SIGNAL_KEYS for s in summary["signals"])
    assert {s["kind"] for s in summary["signals"]} == {"prediction", "input", "embedding"}
    assert json.loads((tmp_path / "r1" / "summary.json").read_text()) == summary
    snap = Snapshot.load(str(tmp_path / "r1" / "snapshot.json"))
    names = [m["metric_name"] for m in snap.dict()["metrics"]]
    assert any(n.startswith("EmbeddingsDrift") for n in names)
    assert any(n.startswith("ValueDrift(column=confidence") for n in names)
    page = (tmp_path / "r1" / "report.html").read_text()
    assert "imgrec-verdict" in page and "no drift" in page and 'src="http' not in page

    dark = write_log(tmp_path / "dark.jsonl", log_records(ref, 120, seed=1, brightness=0.6))
    code, out, _ = run(
        capsys,
        "monitor",
        "report",
        "--log",
        str(dark),
        "--reference",
        str(monitored.model),
        "--out",
        str(tmp_path / "r2"),
        "--fail-on-drift",
    )
    summary = json.loads((tmp_path / "r2" / "summary.json").read_text())
    assert code == 3 and summary["drift"] is True and "drifted: brightness" in out
    assert [s["name"] for s in summary["signals"] if s["drifted"]] == ["brightness"]


def test_class_prior_shift_and_one_class_window(monitored: Monitored, tmp_path: Path) -> None:
    from imgrec.monitoring.logs import WindowSpec
    from imgrec.monitoring.report import monitor_report

    ref = monitored.reference
    labels = sorted(set(ref.columns["label"]))
    one = write_log(tmp_path / "one.jsonl", log_records(ref, 100, label=labels[0]))
    summary = monitor_report(str(one), ref, WindowSpec(last=100), None)
    label = next(s for s in summary["signals"] if s["name"] == "label")
    assert summary["drift"] is True and label["drifted"] is True


def test_window_too_small_gives_no_verdict(monitored: Monitored, tmp_path: Path) -> None:
    from imgrec.monitoring.logs import WindowSpec
    from imgrec.monitoring.report import monitor_report

    log = write_log(tmp_path / "few.jsonl", log_records(monitored.reference, 12))
    summary = monitor_report(
        str(log), monitored.reference, WindowSpec(last=100), str(tmp_path / "o")
    )
    assert summary["drift"] is False
    assert summary["verdict"] == "window too small (n < 30): no verdict"
    assert all(s["drifted"] is None and s["note"] for s in summary["signals"])
    assert (tmp_path / "o" / "report.html").exists()


def test_other_versions_filtered_or_refused(
    monitored: Monitored, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = monitored.reference
    mixed = log_records(ref, 60) + log_records(ref, 25, version="999", seed=5)
    log = write_log(tmp_path / "mixed.jsonl", mixed)
    code, out, _ = run(
        capsys,
        "monitor",
        "report",
        "--log",
        str(log),
        "--reference",
        str(monitored.model),
        "--out",
        str(tmp_path / "o"),
        "--json",
    )
    summary = json.loads(out)
    assert code == 0 and summary["window"]["n"] == 60
    assert summary["log"]["other_versions"] == {"999": 25}
    code, _, err = run(
        capsys,
        "monitor",
        "report",
        "--log",
        str(log),
        "--reference",
        str(monitored.model),
        "--out",
        str(tmp_path / "o"),
        "--model-version",
        "999",
    )
    assert code == 2 and err.startswith("error[reference_mismatch]:") and err.count("\n") == 1


def test_store_references_missing_corrupt_and_of_another_model(
    monitored: Monitored, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ModelStore(tmp_path / "store")
    doc = monitored.reference.doc
    v1 = store.register(monitored.model, attachments={REFERENCE_FILE: reference_bytes(doc)})
    assert REFERENCE_FILE in json.loads((Path(v1.uri) / "COMPLETE").read_text())["files"]
    log = write_log(
        tmp_path / "log.jsonl", log_records(monitored.reference, 60, version=str(v1.version))
    )
    args = ["monitor", "report", "--log", str(log), "--out", str(tmp_path / "o"), "--reference"]
    code, out, _ = run(capsys, *args, f"{store.uri}@production", "--json")
    assert code == 0 and json.loads(out)["model_version"] == str(v1.version)

    other = tmp_path / "other-model"
    shutil.copytree(monitored.model, other)
    card = json.loads((other / "model.json").read_text())
    card["created"] = "2020-01-01T00:00:00Z"
    (other / "model.json").write_text(json.dumps(card))
    (other / REFERENCE_FILE).unlink()
    v2 = store.register(other)  # no reference: made outside the pipeline
    code, _, err = run(capsys, *args, f"{store.uri}@production")
    assert code == 2 and err.startswith("error[reference_missing]:")
    assert f"imgrec monitor reference {store.uri}@{v2.version} DATA" in err

    store.attach(v2.version, REFERENCE_FILE, reference_bytes(doc))  # the first model's profile
    code, _, err = run(capsys, *args, f"{store.uri}@{v2.version}")
    assert code == 2 and err.startswith("error[reference_mismatch]:")

    corrupt = bytearray(reference_bytes(doc))
    corrupt[200] = ord("9") if corrupt[200] != ord("9") else ord("8")
    (tmp_path / "corrupt.json").write_bytes(bytes(corrupt))
    code, _, err = run(capsys, *args, str(tmp_path / "corrupt.json"))
    assert code == 2 and err.startswith("error[invalid_reference]:")
    (tmp_path / "cut.json").write_bytes(reference_bytes(doc)[:500])
    code, _, err = run(capsys, *args, str(tmp_path / "cut.json"))
    assert code == 2 and err.startswith("error[invalid_reference]:")
    code, _, err = run(capsys, *args, str(tmp_path / "missing.json"))
    assert code == 2 and err.startswith("error[reference_missing]:")
