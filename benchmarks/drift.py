"""Drift monitor: false alarms and power on real traffic through the real server.

MNIST: the 5,000 mnist5k digits are split per class (seed 0) into train (60 %), held-out A
(20 %) and held-out B (20 %) for the digits 0-8; every 9 is kept back as a class the model never
saw. A ``small_resnet`` trained on the train part is registered in a model store with its
reference profile made from held-out A (what the register step does). ``imgrec serve
STORE@production --prediction-log LOG`` then receives every held-out B image once clean and once
under each shift, and every 9, as V1 requests of 16; the records the server logged are the
traffic. Windows of n records are drawn from them (without replacement within a window):

* unshifted windows (held-out B) -> false-alarm rate of the verdict at alpha;
* each shift -> power (share of windows called drift), and the smallest n of the grid where it
  reaches 95 %: brightness x0.6, gaussian blur sigma 1.5, gaussian noise sigma 0.15, JPEG
  quality 10, rotation 30 degrees, stroke thickening (3x3 grey dilation), class prior (one
  class at 50 %), and the unseen class (9s as 10 % and as 50 % of the window).

Baselines on the same windows: a K-S test on the confidence alone (at alpha), and Evidently's
``DataDriftPreset`` with its defaults (drift when at least half the columns drift, each column
at p < 0.05) on the same columns. Also: the time of ``monitor_report`` (Evidently HTML
included) on a 10,000-record log. ``--photos`` adds the pretrained EfficientNet-Lite0 on crops
of skimage's photos with the image shifts (run on its own).

    python benchmarks/drift.py [--quick] > drift.json
    python benchmarks/drift.py --photos > drift-photos.json
    python benchmarks/drift.py --speed-only --work DIR   # the 10,000-record report (DIR: a
                                                          # kept --work of an earlier run)
"""

from __future__ import annotations

import argparse
import base64
import copy
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ALPHA = 0.01
BATCH = 16
EVIDENTLY_N = 200  # the DataDriftPreset baseline (seconds a run) is measured at this n only
SHIFTS: dict[str, Callable[[Image.Image], Image.Image]] = {}


def shift(name: str) -> Callable[[Callable[[Image.Image], Image.Image]], Any]:
    def add(fn: Callable[[Image.Image], Image.Image]) -> Any:
        SHIFTS[name] = fn
        return fn

    return add


@shift("brightness x0.6")
def _dark(img: Image.Image) -> Image.Image:
    return Image.fromarray((np.asarray(img, dtype=np.float32) * 0.6).round().astype(np.uint8))


@shift("blur sigma 1.5")
def _blur(img: Image.Image) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(1.5))


@shift("noise sigma 0.15")
def _noise(img: Image.Image) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32) / 255
    rng = np.random.default_rng(zlib.crc32(arr.tobytes()))
    noisy = np.clip(arr + rng.normal(0, 0.15, arr.shape), 0, 1)
    return Image.fromarray((noisy * 255).round().astype(np.uint8))


@shift("jpeg quality 10")
def _jpeg(img: Image.Image) -> Image.Image:
    return img  # encoded as JPEG q10 by `encode`


@shift("rotation 30")
def _rotate(img: Image.Image) -> Image.Image:
    return img.rotate(30, resample=Image.Resampling.BILINEAR)


@shift("stroke thickening")
def _thick(img: Image.Image) -> Image.Image:
    return img.filter(ImageFilter.MaxFilter(3))


def encode(img: Image.Image, condition: str) -> bytes:
    buf = io.BytesIO()
    if condition == "jpeg quality 10":
        img.convert("RGB").save(buf, format="JPEG", quality=10)
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


# --- data and model -------------------------------------------------------------------------
def split_mnist(work: Path) -> dict[str, Any]:
    """ImageFolders ``train/`` and ``heldA/`` (digits 0-8) + in-memory held-out B and 9s."""
    from imgrec.data.samples import mnist5k_arrays

    images, labels = mnist5k_arrays()
    rng = np.random.default_rng(0)
    parts: dict[str, list[tuple[np.ndarray, str]]] = {"train": [], "A": [], "B": [], "9": []}
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        if digit == 9:
            parts["9"] += [(images[i], "9") for i in idx]
            continue
        a, b = int(0.6 * len(idx)), int(0.8 * len(idx))
        parts["train"] += [(images[i], str(digit)) for i in idx[:a]]
        parts["A"] += [(images[i], str(digit)) for i in idx[a:b]]
        parts["B"] += [(images[i], str(digit)) for i in idx[b:]]
    for name, folder in (("train", work / "train"), ("A", work / "heldA")):
        for k, (pixels, label) in enumerate(parts[name]):
            (folder / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(folder / label / f"{k:05d}.png")
    return {
        "B": [(Image.fromarray(p), lab) for p, lab in parts["B"]],
        "9": [(Image.fromarray(p), lab) for p, lab in parts["9"]],
        "counts": {k: len(v) for k, v in parts.items()},
    }


def register_model(work: Path, epochs: int) -> tuple[str, dict[str, Any]]:
    import imgrec
    from imgrec.model_store import ModelStore
    from imgrec.monitoring.reference import REFERENCE_FILE, build_reference, reference_bytes

    result = imgrec.train(str(work / "train"), out=str(work / "run"), epochs=epochs, quiet=True)
    ref = build_reference(str(result.model_dir), str(work / "heldA"), split="all", version=None)
    store = ModelStore(work / "store")
    store.register(result.model_dir, attachments={REFERENCE_FILE: reference_bytes(ref)})
    return f"{store.uri}@production", {"val_accuracy": result.metrics.get("accuracy")}


# --- traffic through the real server ---------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_traffic(
    model: str, log_dir: Path, traffic: dict[str, list[bytes]], work: Path
) -> dict[str, list[dict[str, Any]]]:
    """Send every image of every condition to ``imgrec serve MODEL --prediction-log``; return
    the logged records per condition, in image order."""
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "imgrec", "serve", model, "--port", str(port),
           "--prediction-log", str(log_dir)]  # fmt: skip
    env = {**os.environ, "IMGREC_CACHE": str(work / "cache")}
    out = (work / "server.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{url}/v2/models/imgrec/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"server not ready; see {work / 'server.log'}")
            time.sleep(0.5)
        with httpx.Client(timeout=120) as client:
            for condition, images in traffic.items():
                for start in range(0, len(images), BATCH):
                    chunk = images[start : start + BATCH]
                    body = {
                        "instances": [
                            {"image": {"b64": base64.b64encode(b).decode()}} for b in chunk
                        ]
                    }
                    r = client.post(f"{url}/v1/models/imgrec:predict", json=body,
                                    headers={"x-request-id": f"{condition}|{start}"})  # fmt: skip
                    r.raise_for_status()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        out.close()
    return read_served(log_dir)


def read_served(log_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The logged records per condition (request id ``condition|start``), in image order."""
    by_condition: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for path in sorted(log_dir.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            condition, start = rec["request_id"].rsplit("|", 1)
            by_condition[condition][int(start) + rec["item"]] = rec
    return {c: [recs[i] for i in sorted(recs)] for c, recs in by_condition.items()}


# --- windows and verdicts --------------------------------------------------------------------
def rows_of(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from imgrec.monitoring.logs import LogCounts, to_row

    counts = LogCounts()
    return [r for r in (to_row(rec, counts) for rec in records) if r is not None]


def evidently_preset_drift(reference: Any, rows: list[dict[str, Any]]) -> bool:
    """Evidently's DataDriftPreset with defaults on the monitor's columns: dataset drift."""
    import warnings

    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from imgrec.monitoring.drift import KS_COLUMNS, embeddings

    def frame(cols: dict[str, list[Any]]) -> pd.DataFrame:
        data: dict[str, Any] = {"label": [str(v) for v in cols["label"]]}
        for name, _ in KS_COLUMNS:
            data[name] = np.array([np.nan if v is None else v for v in cols[name]], dtype=float)
        emb = embeddings(cols["embedding"])
        for d in range(emb.shape[1]):
            data[f"e{d}"] = emb[:, d]
        return pd.DataFrame(data)

    ref = frame(reference.columns)
    cur = frame({k: [r.get(k) for r in rows] for k in reference.columns if k != "true_label"})
    numeric = [c for c in ref.columns if c != "label"]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=["label"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snap = Report([DataDriftPreset()]).run(
            current_data=Dataset.from_pandas(cur, data_definition=definition),
            reference_data=Dataset.from_pandas(ref, data_definition=definition),
        )
    for metric in snap.dict()["metrics"]:
        if metric["metric_name"].startswith("DriftedColumnsCount"):
            return bool(metric["value"]["share"] >= 0.5)
    raise RuntimeError("DataDriftPreset gave no DriftedColumnsCount")


def judge(reference: Any, rows: list[dict[str, Any]], evidently: bool) -> dict[str, Any]:
    from scipy import stats

    from imgrec.monitoring.drift import detect
    from imgrec.monitoring.signals import holm

    signals, drift = detect(reference, rows, alpha=ALPHA)
    conf_ref = np.asarray(reference.columns["confidence"], dtype=float)
    conf = np.asarray([r["confidence"] for r in rows], dtype=float)
    # the previous verdict: plain Holm over the ten two-sided signals (no low_confidence)
    plain = [copy.copy(s) for s in signals if s.name != "low_confidence"]
    out = {
        "monitor": bool(drift),
        "plain_holm": bool(holm(plain, ALPHA)),
        "ks_confidence": bool(stats.ks_2samp(conf_ref, conf).pvalue <= ALPHA),
        "signals": [s.name for s in signals if s.drifted],
    }
    if evidently:
        out["evidently_preset"] = evidently_preset_drift(reference, rows)
    return out


def draw(
    pools: dict[str, list[dict[str, Any]]], condition: str, n: int, rng: random.Random
) -> list[dict[str, Any]]:
    clean = pools["clean"]
    if condition == "class prior (one class 50%)":
        ones = [r for r in clean if r["true_label"] == "3"]
        rest = [r for r in clean if r["true_label"] != "3"]
        half = n // 2
        return rng.sample(ones, min(half, len(ones))) + rng.sample(rest, n - min(half, len(ones)))
    if condition.startswith("unseen class"):
        share = 0.1 if "10%" in condition else 0.5
        k = round(share * n)
        return rng.sample(pools["9"], k) + rng.sample(clean, n - k)
    return rng.sample(pools[condition], n)


def run_cells(
    reference: Any,
    pools: dict[str, list[dict[str, Any]]],
    conditions: list[str],
    sizes: list[int],
    windows: int,
    evidently_windows: int,
) -> dict[str, Any]:
    cells: dict[str, Any] = {}
    rng = random.Random(0)
    for condition in conditions:
        for n in sizes:
            pool_n = len(pools["clean" if condition not in pools else condition])
            if n > pool_n:
                continue
            with_evidently = evidently_windows if n == EVIDENTLY_N else 0
            results = [
                judge(reference, draw(pools, condition, n, rng), evidently=i < with_evidently)
                for i in range(windows)
            ]
            fired = Counter(s for r in results for s in r["signals"])
            cell = {
                "windows": windows,
                "monitor": np.mean([r["monitor"] for r in results]),
                "plain_holm": np.mean([r["plain_holm"] for r in results]),
                "ks_confidence": np.mean([r["ks_confidence"] for r in results]),
                "signals": {k: v / windows for k, v in fired.most_common()},
            }
            ev = [r["evidently_preset"] for r in results if "evidently_preset" in r]
            if ev:
                cell["evidently_preset"] = float(np.mean(ev))
                cell["evidently_windows"] = len(ev)
            cells[f"{condition} | n={n}"] = {
                k: (float(v) if isinstance(v, np.floating) else v) for k, v in cell.items()
            }
            print(f"{condition:28s} n={n:4d} monitor {cell['monitor']:.3f} plain "
                  f"{cell['plain_holm']:.3f} ks-conf "
                  f"{cell['ks_confidence']:.3f} evidently {cell.get('evidently_preset', '-')}",
                  file=sys.stderr)  # fmt: skip
    return cells


def first_n_at(cells: dict[str, Any], condition: str, key: str, sizes: list[int]) -> int | None:
    for n in sizes:
        cell = cells.get(f"{condition} | n={n}")
        if cell and cell.get(key, 0) >= 0.95:
            return n
    return None


def report_speed(
    reference: Any, pools: dict[str, list[dict[str, Any]]], work: Path
) -> dict[str, Any]:
    """``monitor_report`` (Evidently included) on a 10,000-record log; median of 2."""
    from imgrec.monitoring.logs import WindowSpec
    from imgrec.monitoring.report import monitor_report

    rng = random.Random(1)
    log = work / "speed" / "predictions-20261130.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    with log.open("w") as fh:
        for k in range(10_000):
            rec = dict(rng.choice(pools["clean_records"]))
            rec["time"] = f"2026-11-30T{k // 3600:02d}:{k // 60 % 60:02d}:{k % 60:02d}.000000Z"
            fh.write(json.dumps(rec) + "\n")
    times, cpu = [], []
    for i in range(2):
        started, started_cpu = time.perf_counter(), time.process_time()
        summary = monitor_report(
            str(log), reference, WindowSpec(last=10_000), str(work / f"out{i}")
        )
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    n, median = summary["window"]["n"], float(np.median(times))
    return {"records": n, "seconds": times, "median_s": median, "cpu_seconds": cpu,
            "load_average": os.getloadavg(), "drift": summary["drift"]}  # fmt: skip


def mnist(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from imgrec.monitoring.reference import resolve_reference

    reuse = (work / "store" / "production.json").exists()
    served = reuse and (work / "predlog").exists()
    data = split_mnist(work)
    if reuse:  # --work of an earlier run: same split and model (and served log, if kept)
        model = f"{work / 'store'}@production"
        train_info = {
            "val_accuracy": json.loads((work / "run" / "metrics.json").read_text())["accuracy"]
        }
    else:
        model, train_info = register_model(work, args.epochs)
    reference = resolve_reference(model)
    traffic = {"clean": [encode(img, "clean") for img, _ in data["B"]]}
    for name, fn in SHIFTS.items():
        traffic[name] = [encode(fn(img), name) for img, _ in data["B"]]
    traffic["9"] = [encode(img, "9") for img, _ in data["9"]]
    started = time.perf_counter()
    if served:
        logged = read_served(work / "predlog")
    else:
        logged = serve_traffic(model, work / "predlog", traffic, work)
    serve_s = time.perf_counter() - started
    pools = {c: rows_of(recs) for c, recs in logged.items()}
    truth = [lab for _, lab in data["B"]]
    for row, label in zip(pools["clean"], truth, strict=True):
        row["true_label"] = label
    pools["clean_records"] = logged["clean"]
    sizes = [50, 100, 200, 500] if not args.quick else [50, 200]
    shifts = [*SHIFTS, "class prior (one class 50%)", "unseen class (10%)", "unseen class (50%)"]
    far = run_cells(reference, pools, ["clean"], sizes, args.null_windows, args.evidently_windows)
    power = run_cells(
        reference, pools, shifts, sizes, args.shift_windows, args.evidently_windows // 2
    )
    return {
        "data": data["counts"],
        "model": {**train_info, "reference_images": reference.n},
        "served_records": {c: len(v) for c, v in logged.items()},
        "serve_seconds": serve_s,
        "false_alarms": far,
        "power": power,
        "n_for_95": {
            s: {
                k: first_n_at(power, s, k, sizes)
                for k in ("monitor", "plain_holm", "ks_confidence")
            }
            for s in shifts
        },
        "report_10k": report_speed(reference, pools, work),
    }


PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "retina", "immunohistochemistry",
          "hubble_deep_field", "colorwheel", "stereo_motorcycle", "camera")  # fmt: skip


def photo_crops(n: int, seed: int) -> list[tuple[Image.Image, str]]:
    """``n`` random crops (96-256 px, resized to 224) of skimage's colour photos."""
    from skimage import data as skdata

    rng = np.random.default_rng(seed)
    sources = []
    for name in PHOTOS:
        arr = getattr(skdata, name)()
        arr = arr[0] if isinstance(arr, tuple) else arr  # the stereo pair: its left image
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        sources.append((Image.fromarray(arr[..., :3].astype(np.uint8)), name))
    out = []
    for _ in range(n):
        img, name = sources[int(rng.integers(len(sources)))]
        side = int(rng.integers(96, min(256, *img.size) + 1))
        x, y = (
            int(rng.integers(0, img.width - side + 1)),
            int(rng.integers(0, img.height - side + 1)),
        )
        out.append((img.crop((x, y, x + side, y + side)).resize((224, 224)), name))
    return out


def photos(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """EfficientNet-Lite0 (pretrained) on crops of skimage's photos, with the image shifts."""
    from imgrec.monitoring.reference import Reference, build_reference

    ref_dir = work / "photos-ref"
    for k, (img, name) in enumerate(photo_crops(args.photo_pool, seed=1)):
        (ref_dir / name).mkdir(parents=True, exist_ok=True)
        img.save(ref_dir / name / f"{k:04d}.jpg", quality=90)
    doc = build_reference("efficientnet_lite0", str(ref_dir), split="all")
    reference = Reference(doc, doc["model"]["version"], str(ref_dir))
    pool = photo_crops(args.photo_pool, seed=2)
    image_shifts = [s for s in SHIFTS if s != "stroke thickening"]
    traffic = {"clean": [encode(img, "clean") for img, _ in pool]}
    for name in image_shifts:
        traffic[name] = [encode(SHIFTS[name](img), name) for img, _ in pool]
    logged = serve_traffic("efficientnet_lite0", work / "photos-log", traffic, work)
    pools = {c: rows_of(recs) for c, recs in logged.items()}
    sizes = [50, 100]
    return {
        "reference_images": reference.n,
        "served_records": {c: len(v) for c, v in logged.items()},
        "false_alarms": run_cells(reference, pools, ["clean"], sizes, args.null_windows, 0),
        "power": run_cells(reference, pools, image_shifts, sizes, args.shift_windows, 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer windows and sizes")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--null-windows", type=int, default=200)
    parser.add_argument("--shift-windows", type=int, default=50)
    parser.add_argument("--evidently-windows", type=int, default=40)
    parser.add_argument("--work", default=None, help="keep the files here")
    parser.add_argument("--photos", action="store_true", help="the photos variant only")
    parser.add_argument("--photo-pool", type=int, default=200)
    parser.add_argument(
        "--speed-only", action="store_true", help="only the 10,000-record report (needs --work)"
    )
    args = parser.parse_args()
    if args.quick:
        args.null_windows, args.shift_windows, args.evidently_windows = 60, 20, 10
    with tempfile.TemporaryDirectory(prefix="imgrec-drift-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        result: dict[str, Any] = {"alpha": ALPHA}
        if args.speed_only:
            from imgrec.monitoring.reference import resolve_reference

            records = read_served(work / "predlog")["clean"]
            reference = resolve_reference(f"{work / 'store'}@production")
            speed_dir = work / "speed-only"
            if speed_dir.exists():
                import shutil

                shutil.rmtree(speed_dir)
            result["report_10k"] = report_speed(reference, {"clean_records": records}, speed_dir)
        elif args.photos:
            result["photos"] = photos(args, work)
        else:
            result["mnist"] = mnist(args, work)
        result["seconds"] = time.perf_counter() - started
    print(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
