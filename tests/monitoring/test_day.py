"""The whole loop of `make run` on small data (scikit-learn's digits): clean window, shifted
window -> drift -> the trigger's dispatch lands on a recording HTTP server on loopback ->
labels for the captured images -> retraining (warm start, two-set gate) -> hot swap -> after."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from recording_server import recording_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from serving_helpers import CACHE, start_server, stop_server

from imgrec.data.samples import write_sample
from imgrec.mlops import run_local
from imgrec.monitoring.day import DayPlan, play_day, table


@pytest.mark.slow
@pytest.mark.timeout(1800)  # two pipeline runs and a server: minutes on a busy 2-core CPU
def test_the_day_on_small_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, store = tmp_path / "digits", str(tmp_path / "store")
    write_sample("digits", str(data), progress=False)
    fast = {"epochs": "4", "train_threads": "2", "min_images": "8"}
    first = run_local(str(data), store, fast, runs_dir=str(tmp_path / "runs"))
    assert first["status"] == "succeeded" and first["registered_version"] == 1, first
    work = tmp_path / "day"
    # the retraining's deploy step finds the server through its state file in $IMGREC_CACHE
    monkeypatch.setenv("IMGREC_CACHE", str(CACHE))
    server = start_server(
        f"{store}@production", tmp_path,
        options={"prediction_log": str(work / "logs"), "capture": str(work / "captures")},
    )  # fmt: skip
    try:
        with recording_server([(204, None)]) as gh:
            monkeypatch.setenv("GITHUB_API_URL", gh.url)
            monkeypatch.setenv("GITHUB_REPOSITORY", "acme/digits")
            monkeypatch.setenv("GITHUB_TOKEN", "ghp_test")
            plan = DayPlan(data_dir=str(data), store=store, url=server.url, port=server.port,
                           logs=str(work / "logs"), capture=str(work / "captures"),
                           work=str(work), n_clean=90, n_shifted=150, n_last=90, epochs=3,
                           on_drift="github",
                           # 8x8 digits through the new camera are barely legible: the gate's
                           # own behaviour is tested in tests/pipeline; here it must let the
                           # retrained model through so the swap and the last window happen
                           params={"train_threads": "2", "min_images": "8",
                                   "gate_max_base_drop": "0.2", "gate_min_improvement": "0.0",
                                   "gate_max_class_regression": "1.0",
                                   "gate_absolute_floor": "0.0"})  # fmt: skip
            result = play_day(plan, say=lambda _: None)
        rows = {r["window"]: r for r in result["rows"]}
        assert rows["1-clean"]["verdict"] == "no drift", rows["1-clean"]
        assert rows["2-new-camera"]["verdict"] == "drift", rows["2-new-camera"]
        assert Path(rows["2-new-camera"]["report"]).is_file()
        [req] = gh.requests
        assert req.path == "/repos/acme/digits/dispatches"
        assert req.body["client_payload"]["idempotency_key"] == "imgrec-v1"
        assert result["trigger"]["status"] == "triggered"
        record = json.loads(Path(store, "triggers", "imgrec-v1.json").read_text())
        assert record["status"] == "accepted"
        assert result["retrain"]["status"] == "succeeded", result["retrain"]
        run = json.loads(Path(result["retrain"]["run_dir"], "summary.json").read_text())
        assert result["retrain"]["gate"] is True, run["gate"]["reasons"]
        assert result["retrain"]["production_version"] == 2
        after = rows["3-new-camera-after"]
        # the version that answered (the server swapped, not only the store's pointer moved)
        assert rows["2-new-camera"]["version"] == "1" and after["version"] == "2", rows
        assert after["accuracy"] > rows["2-new-camera"]["accuracy"]
        assert len(table(result)) == 5
        captured = list((work / "captures").rglob("*.png"))
        assert len(captured) >= 150  # every distinct served image (rate 1.0)
    finally:
        stop_server(server)


def test_only_captured_images_are_labelled(tmp_path: Path) -> None:
    """A slow capture store drops images: the annotators' CSV names only the ones kept."""
    from imgrec.data.captures import capture_key, fingerprint
    from imgrec.monitoring.day import kept_by_capture

    images = [(b"\x89PNG\r\n\x1a\n" + bytes([i]) * 40, str(i % 3)) for i in range(6)]
    for data, _ in images[::2]:  # the server kept every other image
        path = tmp_path / capture_key(fingerprint(data), data)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    kept = kept_by_capture(str(tmp_path), images, settle_s=0.01, timeout_s=1)
    assert kept == images[::2]
