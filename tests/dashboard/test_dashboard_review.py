"""The review queue and the accuracy where labels came back: captured images (the layout of
``imgrec serve --capture``), labels (what ``imgrec label import`` writes) and the prediction
log, joined by fingerprint."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

from dashboard_helpers import EVIL, hours_ago, log_record, write_log

from imgrec.dashboard.app import create_app
from imgrec.dashboard.config import DashboardConfig
from imgrec.dashboard.predlog import LogIndex
from imgrec.data.captures import capture_key, fingerprint


def _png(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (shade, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def capture(root: Path, data: bytes) -> str:
    """Store ``data`` where the server's capture does (its own key); returns the fingerprint."""
    fp = fingerprint(data)
    path = root / capture_key(fp, data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return fp


@pytest.fixture
def loop(tmp_path: Path) -> DashboardConfig:
    guesses = [("cat", 0.9), ("dog", 0.35), (EVIL, 0.6), ("cat", 0.51)]
    fps = [capture(tmp_path / "captures", _png(40 * i)) for i in range(len(guesses))]
    write_log(tmp_path / "log" / "p.jsonl", [
        log_record(hours_ago(30 - i), fingerprint=fp, label=label, confidence=conf)
        for i, (fp, (label, conf)) in enumerate(zip(fps, guesses, strict=True))
    ])  # fmt: skip
    for fp, human in zip(fps, ["cat", "cat", EVIL, "dog"], strict=True):  # right, wrong, right...
        folder = tmp_path / "labels" / human
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{fp[7:]}.png").write_bytes(b"")
    return DashboardConfig(
        store=str(tmp_path / "store"), log=str(tmp_path / "log"),
        capture=str(tmp_path / "captures"), labels=str(tmp_path / "labels"),
    )  # fmt: skip


def _client(config: DashboardConfig, tmp: Path) -> TestClient:
    app = create_app(config)
    app.state.sources.log.cache_path = tmp / "index.json"
    # the pages show what is indexed so far: under load the start-up indexing was not done
    assert app.state.sources.wait_indexed(120)
    return TestClient(app, base_url="http://127.0.0.1:8050")


def test_least_certain_first_with_guess_and_label(loop: DashboardConfig, tmp_path: Path) -> None:
    page = _client(loop, tmp_path).get("/review").text
    confidences = re.findall(r'data-confidence="([0-9.]+)"', page)
    assert confidences == ["0.35", "0.51", "0.6", "0.9"]
    assert "4 captured images" in page and "4 with the model" in page and "4 labelled" in page
    assert "&lt;img src=x" in page and "<img src=x" not in page


def test_thumbnails_through_the_decoder(loop: DashboardConfig, tmp_path: Path) -> None:
    c = _client(loop, tmp_path)
    first = re.search(r'src="(/review/images/[0-9a-f]{16}\.jpg)"', c.get("/review").text)
    assert first is not None
    thumb = c.get(first[1])
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).size == (40, 30)
    assert c.get("/review/images/0123456789abcdef.jpg").status_code == 404
    assert c.get("/review/images/..%2F..%2Fetc%2Fpasswd.jpg").status_code == 404


def test_accuracy_per_day_where_labels_came_back(loop: DashboardConfig, tmp_path: Path) -> None:
    page = _client(loop, tmp_path).get("/monitoring").text
    # records at 30..27 hours before 2026-11-30 12:00: 2026-11-29 06:00..09:00, one day
    row = re.search(r"<tr><td>2026-11-29</td>(.*?)</tr>", page)
    assert row is not None
    assert re.findall(r'class="num">([0-9.]+)<', row[1]) == ["4", "2", "0.500"]
    assert 'data-chart="accuracy"' in page and 'data-y="0.5"' in page


def test_a_capture_written_after_its_record_is_still_joined(tmp_path: Path) -> None:
    fp = "sha256:00000000000000aa"
    write_log(tmp_path / "p.jsonl", [log_record(hours_ago(0), fingerprint=fp, confidence=0.2)])
    wanted: set[str] = set()
    index = LogIndex(tmp_path / "p.jsonl", cache_dir=tmp_path / "c", interest=lambda: wanted)
    index.refresh()
    assert fp not in index.known
    wanted.add(fp)  # the capture shows up after the record was indexed
    index.refresh()
    assert index.known[fp][:2] == ("cat", 0.2)
    again = LogIndex(tmp_path / "p.jsonl", cache_dir=tmp_path / "c", interest=lambda: wanted)
    assert again.known[fp][:2] == ("cat", 0.2)  # kept in the saved index
