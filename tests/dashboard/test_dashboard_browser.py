"""The dashboard in real headless Chromium, over real records: a store filled by a real local
pipeline run (plus versions with known per-class metrics), the pretrained EfficientNet-Lite0
served by the real KServe predictor with its prediction log, and drift reports in the schema
of ``imgrec monitor report``. Screenshots go to build/dashboard-screenshots/."""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))

from browser_helpers import Dashboard, Visit, screenshot
from dashboard_helpers import EVIL, hours_ago, make_store, per_class, write_drift_report
from pipeline_helpers import make_imagefolder
from serving_helpers import CAT_CLASSES, Server, jpeg_bytes, start_server, stop_server

from imgrec.mlops import run_local
from imgrec.pipelines.submit import record_submission

pytestmark = pytest.mark.slow

KFP_HOST = "http://127.0.0.1:9/pipeline"  # a KFP UI's address, only linked to
RECALLS = [[0.8, 0.6, 0.5], [0.9, 0.5, 0.7]]  # versions 2 and 3 (version 1 is the real run)
SIGNALS = {  # drift signal -> p-value per report window, oldest first
    "confidence": [0.41, 0.22, 0.0004],
    EVIL: [0.9, 0.5, 0.3],
}


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("dash")
    data = make_imagefolder(root / "data", classes=("<u>circle", "square"), n_train=12, n_val=4)
    summary = run_local(str(data), str(root / "store"), {"epochs": "1", "train_threads": "1",
                        "min_images": "4", "gate_absolute_floor": "0.0"},
                        runs_dir=str(root / "runs"))  # fmt: skip
    assert summary["status"] == "succeeded" and summary["registered_version"] == 1, summary
    make_store(root, RECALLS)  # versions 2 and 3 into the same store
    for i, end in enumerate([hours_ago(2), hours_ago(1), hours_ago(0)]):
        signals = [
            {"name": name, "kind": "prediction", "method": "ks", "statistic": 0.1,
             "p_value": p[i], "threshold": 0.01 / len(SIGNALS), "drifted": p[i] < 0.005}
            for name, p in SIGNALS.items()
        ]  # fmt: skip
        write_drift_report(root / "reports", f"window-{i}", end, signals)
    started = {"run_id": "4f1c-run", "state": "RUNNING"}  # what submit() returned
    submitted = record_submission(root / "runs", KFP_HOST, started, experiment="imgrec",
                                  run_name=EVIL, arguments={})  # fmt: skip
    return {"root": root, "run_id": Path(summary["run_dir"]).name, "kfp_run": submitted.name}


@pytest.fixture(scope="module")
def server(records: dict[str, Any]) -> Any:
    root = records["root"]
    srv = start_server(
        "efficientnet_lite0", root, options={"prediction_log": str(root / "predlog"),
                                             "capture": str(root / "captures"), "threads": 1}
    )  # fmt: skip
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def dash(records: dict[str, Any], server: Server, dashboard: Callable[..., Dashboard]) -> str:
    root = records["root"]
    started = dashboard(
        "--store", str(root / "store"), "--runs", str(root / "runs"),
        "--log", str(root / "predlog"), "--reports", str(root / "reports"),
        "--capture", str(root / "captures"), "--server", server.url,
        env={"IMGREC_CACHE": str(root / "cache")},
    )  # fmt: skip
    return started.url


def _v2_top(server: Server, data: bytes) -> str:
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                        "data": [base64.b64encode(data).decode()]}]}  # fmt: skip
    out = httpx.post(f"{server.url}/v2/models/imgrec/infer", json=body, timeout=120).json()
    return str(next(o for o in out["outputs"] if o["name"] == "label")["data"][0])


def test_upload_shows_the_endpoints_label_and_a_bad_files_error(
    dash: str, server: Server, visit: Callable[[str, str], Visit]
) -> None:
    from skimage import data as skdata

    photo = jpeg_bytes(Image.fromarray(skdata.chelsea()))
    want = _v2_top(server, photo)
    assert want in CAT_CLASSES
    v = visit(f"{dash}/try", "try-empty")
    v.page.set_input_files("#files", [
        {"name": "chelsea.jpg", "mimeType": "image/jpeg", "buffer": photo},
        {"name": f"{EVIL}.jpg", "mimeType": "image/jpeg", "buffer": b"just text, not a JPEG"},
    ])  # fmt: skip
    v.page.wait_for_selector("article.result >> nth=1", timeout=120_000)
    cards = v.page.locator("article.result")
    assert cards.nth(0).locator("ol.predictions li").first.get_attribute("data-label") == want
    error = cards.nth(1).locator("p.error")
    assert error.get_attribute("data-code") == "unsupported_media_type"
    assert cards.nth(1).locator("h3").inner_text() == f"{EVIL}.jpg"  # text, not markup
    assert v.page.title() == "Try it · imgrec dashboard"  # the onerror never ran

    # drag and drop: a drop event carrying the file, as a browser makes it
    v.page.evaluate(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "dropped.jpg", { type: "image/jpeg" }));
            document.getElementById("upload-form")
                .dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true }));
        }""",
        base64.b64encode(photo).decode(),
    )
    v.page.wait_for_selector("article.result >> nth=2", timeout=120_000)
    assert cards.nth(2).locator("ol.predictions li").first.get_attribute("data-label") == want

    # webcam snapshot (Chromium's fake camera): a frame goes the same way
    v.page.click("#webcam-start")
    v.page.wait_for_function("() => document.getElementById('webcam').videoWidth > 0")
    v.page.click("#webcam-snap")
    v.page.wait_for_selector("article.result >> nth=3", timeout=120_000)
    assert cards.nth(3).locator("ol.predictions li").count() == 5
    screenshot(v.page, "try-results")
    assert v.errors == []


PAGES = [
    ("", "overview"),
    ("/models", "models"),
    ("/models/1", "model-1"),
    ("/models/3", "model-3"),
    ("/models/compare?a=2&b=3", "compare"),
    ("/runs", "runs"),
    ("/runs/{run_id}", "run"),
    ("/runs/{kfp_run}", "run-kfp"),
    ("/monitoring", "monitoring"),
    ("/review", "review"),
]


@pytest.mark.parametrize(("path", "shot"), PAGES)
def test_every_page_loads_without_console_errors(
    dash: str, records: dict[str, Any], visit: Callable[[str, str], Visit], path: str, shot: str
) -> None:
    v = visit(dash + path.format(run_id=records["run_id"], kfp_run=records["kfp_run"]), shot)
    assert v.errors == []
    assert v.page.locator("main h1").count() == 1
    for img in v.page.locator("main img").all():  # figures from the run load
        assert v.page.evaluate("(i) => i.complete && i.naturalWidth > 0", img.element_handle())


def test_a_run_submitted_to_kfp_links_to_its_ui(
    dash: str, records: dict[str, Any], visit: Callable[[str, str], Visit]
) -> None:
    v = visit(f"{dash}/runs", "runs-kfp")
    row = v.page.locator(f"#runs tr[data-run='{records['kfp_run']}']")
    assert row.locator("a.kfp").get_attribute("href") == f"{KFP_HOST}/#/runs/details/4f1c-run"
    assert row.locator("a.kfp").inner_text() == EVIL  # the run name, as text
    assert v.page.locator("#runs a.kfp").count() == 1  # the local run has none
    assert v.errors == []


def test_model_pages_render_names_as_text(dash: str, visit: Callable[[str, str], Visit]) -> None:
    v = visit(f"{dash}/models/3", "model-3-escaped")
    assert v.page.locator("#per-class td", has_text=EVIL).count() == 1
    assert v.page.locator("main img[src='x']").count() == 0
    assert v.page.title() == "Model 3 · imgrec dashboard"
    run = visit(f"{dash}/models/1", "model-1-confusion")
    assert run.page.locator("svg[data-chart=confusion] rect.cell").count() == 4
    assert run.page.locator("#per-class td", has_text="<u>circle").count() == 1


def test_comparison_shows_the_per_class_deltas(
    dash: str, visit: Callable[[str, str], Visit]
) -> None:
    v = visit(f"{dash}/models/compare?a=2&b=3", "compare-deltas")
    for i, name in enumerate(["cat", "dog", EVIL]):
        row = v.page.locator("#per-class-deltas tr", has=v.page.locator(f"td >> text='{name}'"))
        cell = row.locator("td.delta[data-key=recall]")
        assert float(cell.get_attribute("data-delta")) == pytest.approx(
            RECALLS[1][i] - RECALLS[0][i], abs=1e-12
        )
        assert cell.inner_text() == f"{RECALLS[1][i] - RECALLS[0][i]:+.4f}"
    bars = v.page.locator("svg[data-chart=class-deltas] rect.delta").all()
    drawn = {b.get_attribute("data-x"): float(b.get_attribute("data-y") or "nan") for b in bars}
    want = {n: per_class([n], [RECALLS[1][i]])[n]["f1"] - per_class([n], [RECALLS[0][i]])[n]["f1"]
            for i, n in enumerate(["cat", "dog", EVIL])}  # fmt: skip
    assert drawn == pytest.approx(want, rel=1e-5)


def test_drift_chart_points_equal_the_reports(
    dash: str, visit: Callable[[str, str], Visit]
) -> None:
    v = visit(f"{dash}/monitoring", "monitoring-drift")
    for name, values in SIGNALS.items():
        figure = v.page.locator("figure.drift").filter(
            has=v.page.locator("figcaption", has_text=name)
        )
        points = figure.locator("circle.point")
        assert [float(p.get_attribute("data-y")) for p in points.all()] == values
        flags = [p.get_attribute("data-flag") == "1" for p in points.all()]
        assert flags == [p < 0.005 for p in values]
    assert v.page.locator("#drift-reports a").count() == 3
    report = v.page.locator("#drift-reports a").first.get_attribute("href")
    assert httpx.get(dash + report).headers["content-security-policy"].startswith("sandbox")


def test_overview_shows_production_and_logged_traffic(
    dash: str, server: Server, visit: Callable[[str, str], Visit]
) -> None:
    for photo in _photos():
        _v2_top(server, photo)
    deadline = time.monotonic() + 30
    while True:  # the log is written off the request path (<= 1 s)
        v = visit(dash + "/", "overview-traffic")
        bars = v.page.locator("svg[data-chart=requests] rect.bar")
        logged = sum(float(b.get_attribute("data-y") or 0) for b in bars.all())
        if logged >= 2 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert logged >= 2
    assert "version 3" in v.page.locator("#deployed").inner_text()
    assert "live: yes" in v.page.locator("#health").inner_text()
    assert "drift" in v.page.locator("#drift").inner_text()


def _photos() -> list[bytes]:
    from skimage import data as skdata

    return [jpeg_bytes(Image.fromarray(getattr(skdata, n)())) for n in ("chelsea", "astronaut")]


def test_review_queue_lists_the_served_captures_least_certain_first(
    dash: str, visit: Callable[[str, str], Visit]
) -> None:
    """Two photos sent through Try it's route are captured by the real server; the queue
    shows each with its logged guess, the less certain first."""
    files = [("files", (f"{i}.jpg", p)) for i, p in enumerate(_photos())]
    assert httpx.post(f"{dash}/api/predict", files=files, timeout=120).status_code == 200
    deadline = time.monotonic() + 30
    while True:  # the server writes its log and captures off the request path (<= 1 s)
        v = visit(f"{dash}/review", "review-queue")
        items = v.page.locator("article.review")
        confidences = [a.get_attribute("data-confidence") for a in items.all()]
        if (len(confidences) >= 2 and all(confidences)) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(confidences) >= 2 and all(confidences), confidences
    values = [float(c or 0) for c in confidences]
    assert values == sorted(values)
    guesses = v.page.locator("article.review strong").all_inner_texts()
    assert any(g in CAT_CLASSES for g in guesses)
    for img in items.locator("img").all():  # thumbnails through the decoder
        assert v.page.evaluate("(i) => i.complete && i.naturalWidth > 0", img.element_handle())
    assert v.errors == []
