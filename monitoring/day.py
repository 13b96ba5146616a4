"""A day of traffic against a running server: the learning loop end to end (``make run``).

1. a clean window of digits -> drift report: no drift;
2. a "new camera" window -- the same kind of digits blurred, thicker and rotated -> drift;
3. the trigger fires (``local``, or ``github`` with the dispatch recorded; the retraining then
   runs here in the runner's place);
4. labels arrive for the captured shifted images -- from the sample's own labels, standing in
   for annotators -- as a ``fingerprint,label`` CSV through ``imgrec label import``;
5. the retraining pipeline (new data beside the base dataset, warm start from production,
   the two-set gate, deploy ``local``) promotes and hot-swaps the server;
6. a last window of fresh shifted digits, and the clean one again, show accuracy after.

::

    rows = play_day(DayPlan(data_dir="data/mnist5k", store="model-store", url=server_url, ...))
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from imgrec.data.captures import captured_images, fingerprint


@dataclass
class DayPlan:
    """What the day sends and where everything goes."""

    data_dir: str  # an ImageFolder with train/ and val/ (mnist5k)
    store: str
    url: str  # the running server, e.g. http://127.0.0.1:8080
    port: int
    logs: str  # the server's --prediction-log folder
    capture: str  # the server's --capture folder
    work: str  # reports, labels and runs of the day go here
    n_clean: int = 300
    n_shifted: int = 500
    n_last: int = 300
    epochs: int = 0  # 0: the pipeline's choice (10 for a warm start with new labelled data)
    on_drift: str = "local"  # local | github
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)  # extra retraining parameters


def new_camera(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The shift: strokes thicker (3x3 max filter), rotated by 15-30 degrees either way,
    blurred (Gaussian, radius 1.2)."""
    angle = float(rng.uniform(15, 30)) * (1 if rng.random() < 0.5 else -1)
    out = image.convert("L").filter(ImageFilter.MaxFilter(3))
    out = out.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=0)
    return out.filter(ImageFilter.GaussianBlur(1.2))


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def pick(data_dir: str, split: str, n: int, seed: int, offset: int = 0) -> list[tuple[Path, str]]:
    """``n`` (path, label) of ``split``, in a seeded order (from ``offset``)."""
    files = sorted(Path(data_dir, split).glob("*/*.png"))
    order = np.random.default_rng(seed).permutation(len(files))
    return [(files[i], files[i].parent.name) for i in order[offset : offset + n]]


def encode(items: list[tuple[Path, str]], shift: bool, seed: int) -> list[tuple[bytes, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for path, label in items:
        with Image.open(path) as im:
            image = new_camera(im, rng) if shift else im.convert("L")
            out.append((_png(image), label))
    return out


def send(url: str, images: list[tuple[bytes, str]], batch: int = 16) -> tuple[float, str]:
    """V1 requests of ``batch`` images; returns the top-1 accuracy against the labels and the
    model version(s) that answered (``"1"``, or ``"1+2"`` when a swap fell inside the window)."""
    import httpx

    correct = 0
    versions: list[str] = []
    with httpx.Client(timeout=120) as client:
        for i in range(0, len(images), batch):
            chunk = images[i : i + batch]
            body = {
                "instances": [{"image": {"b64": base64.b64encode(d).decode()}} for d, _ in chunk]
            }
            r = client.post(f"{url}/v1/models/imgrec:predict", json=body)
            r.raise_for_status()
            version = str(r.json().get("model_version"))
            if version not in versions:
                versions.append(version)
            for (_, label), pred in zip(chunk, r.json()["predictions"], strict=True):
                correct += pred.get("labels", [None])[0] == label
    return correct / max(1, len(images)), "+".join(versions)


def _wait_for_log(logs: str, n: int, timeout_s: float = 20) -> None:
    """Until the prediction log holds at least ``n`` records (the writer flushes each second)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = sum(p.read_text().count("\n") for p in Path(logs).glob("*.jsonl"))
        if lines >= n:
            return
        time.sleep(0.3)


def kept_by_capture(
    capture: str, images: list[tuple[bytes, str]], settle_s: float = 2.0, timeout_s: float = 20
) -> list[tuple[bytes, str]]:
    """The images the server's capture kept: what annotators get to label.

    Capture writes off the request path and drops images when the store is slow, so a sent
    image may never be stored; waits until the captured set stops growing (bounded).
    """
    wanted = {fingerprint(data) for data, _ in images}
    deadline = time.monotonic() + timeout_s
    have: set[str] = set()
    while True:
        now = wanted & captured_images(capture).keys()
        if now == wanted or (have and now == have) or time.monotonic() > deadline:
            have = now
            break
        have = now
        time.sleep(settle_s)
    return [(data, label) for data, label in images if fingerprint(data) in have]


def _report(plan: DayPlan, name: str, last: int) -> tuple[dict[str, Any], str, Any]:
    """The window's verdict now, and its report's files (Evidently's page) as a function to
    call on another thread while the day goes on."""
    from imgrec.monitoring.logs import WindowSpec
    from imgrec.monitoring.report import judge_window

    out = str(Path(plan.work) / "reports" / name)
    summary, write = judge_window(plan.logs, f"{plan.store}@production", WindowSpec(last=last))
    return summary, out, write


def labels_csv(images: list[tuple[bytes, str]], path: Path) -> Path:
    """The annotators' stand-in: ``fingerprint,label`` of the images, from their own labels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["fingerprint", "label"])
        w.writerows((fingerprint(data), label) for data, label in images)
    return path


def _production(store: str) -> int | None:
    from imgrec.model_store import ModelStore

    return ModelStore(store).production_version()


def play_day(plan: DayPlan, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the day (see the module docstring); returns ``{"rows": [...], "timings": [...],
    ...}``, ``timings`` the seconds of each part of the day.

    A window's verdict is judged at once (it decides the trigger); its Evidently page is
    written on one other thread while the day goes on (the next window, the labels, the
    retraining), and the day waits for the pages before it returns."""
    from concurrent.futures import Future, ThreadPoolExecutor

    timings: list[dict[str, Any]] = []
    pages: list[tuple[str, Future[float]]] = []

    def timed_write(write: Callable[[str], None], out: str) -> float:
        start = time.monotonic()
        write(out)
        return time.monotonic() - start

    def paint(name: str, write: Callable[[str], None], out: str) -> None:
        pages.append((name, painter.submit(timed_write, write, out)))

    with ThreadPoolExecutor(1, thread_name_prefix="drift-page") as painter:
        try:
            result = _play(plan, say, timings, paint)
        finally:
            waited = time.monotonic()
            for name, page in pages:
                if page.exception() is None:  # waits; a failed page raises below
                    timings.append({"part": f"{name}: report page (beside the day)",
                                    "seconds": round(page.result(), 1)})  # fmt: skip
            timings.append({"part": "waiting for the report pages",
                            "seconds": round(time.monotonic() - waited, 1)})  # fmt: skip
    for _, page in pages:
        page.result()  # an error writing a report is the day's error
    return result


def _play(
    plan: DayPlan,
    say: Callable[[str], None],
    timings: list[dict[str, Any]],
    paint: Callable[[str, Callable[[str], None], str], None],
) -> dict[str, Any]:
    from imgrec.labels import import_labels
    from imgrec.monitoring.trigger import TriggerSettings, fire

    rows: list[dict[str, Any]] = []
    before = _production(plan.store)
    sent = 0

    @contextlib.contextmanager
    def timed(name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            timings.append({"part": name, "seconds": round(time.monotonic() - start, 1)})

    def window(name: str, images: list[tuple[bytes, str]], report: bool) -> dict[str, Any]:
        nonlocal sent
        with timed(f"{name}: {len(images)} requests"):
            acc, served = send(plan.url, images)
        sent += len(images)
        row: dict[str, Any] = {"window": name, "version": served,
                               "images": len(images), "accuracy": acc, "verdict": "",
                               "report": ""}  # fmt: skip
        if report:
            with timed(f"{name}: drift verdict"):
                _wait_for_log(plan.logs, sent)
                summary, out, write = _report(plan, name.split()[0], len(images))
            paint(name, write, out)
            row.update(verdict=summary["verdict"], report=str(Path(out) / "report.html"),
                       summary=summary)  # fmt: skip
        rows.append(row)
        spent = "  ".join(f"{t['part'].split(': ')[1]} {t['seconds']:.1f} s"
                          for t in timings if t["part"].startswith(name))  # fmt: skip
        say(f"  {name}: v{row['version']} accuracy {acc:.3f} {row['verdict']}  ({spent})")
        return row

    result: dict[str, Any] = {"rows": rows, "before": before, "timings": timings}
    clean = encode(pick(plan.data_dir, "val", plan.n_clean, plan.seed), False, plan.seed)
    window("1-clean", clean, report=True)
    shifted = encode(pick(plan.data_dir, "train", plan.n_shifted, plan.seed), True, plan.seed)
    drifted = window("2-new-camera", shifted, report=True)
    if not drifted["summary"]["drift"]:
        say("  no drift on the shifted window: nothing to retrain")
        return result
    # labels for the captured shifted images (the sample's own labels stand in for annotators)
    with timed("labels: captured images, import"):
        captured = kept_by_capture(plan.capture, shifted)
        key_csv = labels_csv(captured, Path(plan.work) / "labels" / "new-camera.csv")
        new_data = Path(plan.work) / "labels" / f"new-camera-{int(time.time())}"
        imported = import_labels(str(key_csv), plan.capture, str(new_data), classes=_classes(plan))
    say(f"  labels: {imported['imported']} of {len(shifted)} shifted images were captured and "
        f"labelled (from the sample's own "
        f"labels, standing in for annotators) -> {new_data}  "
        f"({timings[-1]['seconds']:.1f} s)")  # fmt: skip
    params = {"new_data_uri": str(new_data.resolve()), "init_from": "production",
              "epochs": str(plan.epochs), "deploy_target": "local",
              "serve_port": str(plan.port), **plan.params}  # fmt: skip
    settings = TriggerSettings(
        store=plan.store, report_uri=str(Path(drifted["report"]).parent), data=plan.data_dir,
        params=params, runs_dir=str(Path(plan.work) / "pipeline"), backoff_s=0.2,
    )  # fmt: skip
    with timed(f"trigger ({plan.on_drift}) and retraining pipeline"):
        fired = fire(plan.on_drift, drifted["summary"], settings)
        result["trigger"] = fired
        say(f"  trigger ({plan.on_drift}): {fired['status']}, key {fired['key']}, record "
            f"{fired.get('record', '')}")  # fmt: skip
        if plan.on_drift != "local" and fired["status"] == "triggered":
            # the dispatch was accepted; here the retraining runs in the workflow runner's place
            from imgrec.monitoring.trigger import ACTIONS

            fired["details"] = ACTIONS.get("local")({}, settings)
    details = fired.get("details") or {}
    result["retrain"] = details
    say(f"  retraining: {details.get('status')}, gate passed: {details.get('gate')}, "
        f"production v{_production(plan.store)} ({details.get('seconds')} s)")  # fmt: skip
    last = encode(pick(plan.data_dir, "val", plan.n_last, plan.seed + 1, offset=plan.n_clean),
                  True, plan.seed + 1)  # fmt: skip
    window("3-new-camera-after", last, report=False)
    window("4-clean-after", clean, report=False)
    return result


def _classes(plan: DayPlan) -> list[str]:
    return sorted(p.name for p in Path(plan.data_dir, "train").iterdir() if p.is_dir())


def table(result: dict[str, Any]) -> list[str]:
    """The day as text lines: one per window."""
    lines = [f"{'window':<22} {'model':>5} {'images':>6} {'accuracy':>8}  verdict / report"]
    for r in result["rows"]:
        tail = f"{r['verdict']}  {r['report']}" if r["report"] else ""
        lines.append(f"{r['window']:<22} {'v' + str(r['version']):>5} {r['images']:>6} "
                     f"{r['accuracy']:>8.3f}  {tail}")  # fmt: skip
    return lines


def dump(result: dict[str, Any], path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    slim = {
        **result,
        "rows": [{k: v for k, v in r.items() if k != "summary"} for r in result["rows"]],
    }
    Path(path).write_text(json.dumps(slim, indent=1, default=str))
