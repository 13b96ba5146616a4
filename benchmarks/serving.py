"""Serving speed: requests/s and p50/p99 latency at concurrency 1, 8 and 32.

640x480 JPEGs, the pretrained EfficientNet-Lite0 at 224 px, load generated from this process
(aiohttp on loopback) against servers started one at a time as separate processes:

* ``imgrec``: the imgrec KServe predictor (ONNX Runtime fp32, dynamic batching), V1 JSON;
* ``imgrec-int8``: the same with ``precision="int8"``, calibrated on 64 other crops;
* ``imgrec-bf16``: the same with ``precision="bf16"`` (OpenVINO, CPUs with AMX / AVX512-BF16),
  checked against fp32 on those 64 crops;
* ``plain-kserve``: a plain PyTorch-eager KServe predictor (benchmarks/serving_baselines.py);
* ``torchserve-default``: TorchServe's stock ``image_classifier`` handler as installed;
* ``torchserve-tuned``: the same, tuned as TorchServe documents for CPUs (one worker per
  core, one intra-op thread per worker).

Each (server, concurrency) run is bounded: ``--seconds`` after a warm-up, at most
``--max-requests``. Request bodies are encoded once, so the load generator costs every server
the same. Prints one JSON object; ratios compare servers measured in the same run. A server
that exits or is not ready within ``START_TIMEOUT_S`` is reported with its log's tail on
stderr (``failed_to_start`` in the JSON) and the other servers still run.

    python benchmarks/serving.py [--seconds 8] [--repeats 3] [--only imgrec,plain-kserve]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from machine import cpu_model  # this script's folder is on sys.path
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CONCURRENCY = (1, 8, 32)
IMGREC_OPTIONS: dict[str, str] = {}  # --imgrec-options: ServingOptions fields as JSON
START_TIMEOUT_S = 300  # export + int8 calibration on a slow, loaded machine take ~1 min


def make_jpegs(n: int = 16, seed: int = 0) -> list[bytes]:
    """n distinct 640x480 JPEGs cut from scikit-image's photos (``seed`` picks the crops)."""
    from skimage import data

    sources = [data.chelsea(), data.astronaut(), data.coffee(), data.rocket()]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = Image.fromarray(sources[i % len(sources)]).convert("RGB")
        scale = 640 / min(img.size) * (1 + rng.random() * 0.3)
        img = img.resize((int(img.width * scale) + 1, int(img.height * scale) + 1))
        x = int(rng.integers(0, img.width - 640 + 1))
        y = int(rng.integers(0, img.height - 480 + 1))
        buf = io.BytesIO()
        img.crop((x, y, x + 640, y + 480)).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerFailed(RuntimeError):
    """A server exited or never became ready; the message ends with its log's tail."""


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a server log (what it said before failing)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def wait_http(
    url: str,
    timeout_s: float,
    headers: dict[str, str] | None = None,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``url`` until it answers 200; fail early (with the log's tail) when ``proc``
    exits: a server that refuses to start (e.g. ``int8_inaccurate``) is not waited on."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log_tail(log) if log else ""
            raise ServerFailed(f"server exited with code {proc.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=2, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    tail = log_tail(log) if log else ""
    raise ServerFailed(f"{url} not ready after {timeout_s} s:\n{tail}")


def calibration_folder(work: Path) -> Path:
    """64 JPEGs for int8 calibration: other crops (seed 1) than the 16 the load sends."""
    folder = work / "calibration"
    if not folder.exists():
        folder.mkdir(parents=True)
        for i, jpeg in enumerate(make_jpegs(64, seed=1)):
            (folder / f"{i:03d}.jpg").write_bytes(jpeg)
    return folder


def prepare_int8(options: dict[str, Any], env: dict[str, str], log: Path) -> None:
    """Export and calibrate once into the cache the server will read, untimed: calibration
    is a one-time cost (cached), and on a loaded 2-core machine it alone took 136 s, which
    with the export ran past the start timeout. A refusal (``int8_inaccurate``) shows here,
    with the output's tail."""
    code = (
        "import sys; from imgrec.serving.served_model import load_runtime; "
        "load_runtime('efficientnet_lite0', precision='int8', calibration=sys.argv[1])"
    )
    cmd = [sys.executable, "-c", code, options["calibration"]]
    with log.open("wb") as out:
        done = subprocess.run(
            cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=1800
        )
    if done.returncode != 0:
        raise ServerFailed(f"int8 preparation failed ({done.returncode}):\n{log_tail(log)}")


@contextmanager
def kserve_server(kind: str, work: Path) -> Iterator[tuple[str, Callable[[bytes], Any]]]:
    port = free_port()
    if kind.startswith("imgrec"):
        options = json.loads(IMGREC_OPTIONS.get("json", "{}"))
        if kind == "imgrec-int8":
            options.update(precision="int8", calibration=str(calibration_folder(work)))
        if kind == "imgrec-bf16":  # checked against fp32 on the same calibration crops
            options.update(precision="bf16", calibration=str(calibration_folder(work)))
        code = ("import json, sys; from imgrec.serving.server import serve; "
                "from imgrec.serving.model import ServingOptions; "
                "serve('efficientnet_lite0', port=int(sys.argv[1]), "
                "options=ServingOptions(**json.loads(sys.argv[2])))")  # fmt: skip
        cmd = [sys.executable, "-c", code, str(port), json.dumps(options)]
    else:
        # -m from the repo root: run as a script, benchmarks/serving.py would shadow `serving`
        cmd = [sys.executable, "-m", "benchmarks.serving_baselines", "plain", str(port)]
    env = {**os.environ, "IMGREC_CACHE": str(work / "cache")}
    log_path = work / f"{kind}.log"
    if kind == "imgrec-int8":
        prepare_int8(options, env, log_path)
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        ready = f"http://127.0.0.1:{port}/v2/models/imgrec/ready"
        wait_http(ready, START_TIMEOUT_S, proc=proc, log=log_path)
        url = f"http://127.0.0.1:{port}/v1/models/imgrec:predict"
        bodies: dict[bytes, bytes] = {}  # encoded once: the client's cost stays per server alike
        headers = {"Content-Type": "application/json"}

        def request(jpeg: bytes) -> dict[str, Any]:
            if jpeg not in bodies:
                instance = {"image": {"b64": base64.b64encode(jpeg).decode()}}
                bodies[jpeg] = json.dumps({"instances": [instance]}).encode()
            return {"url": url, "data": bodies[jpeg], "headers": headers}

        yield url, request
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:  # a blocked event loop ignores graceful shutdown
            proc.kill()
            proc.wait(10)
        log.close()


@contextmanager
def torchserve(tuned: bool, work: Path) -> Iterator[tuple[str, Callable[[bytes], Any]]]:
    from benchmarks.serving_baselines import write_torchserve_model
    from imgrec.serving.torchserve import TorchServe

    store = work / "ts-store"
    if not (store / "lite0.mar").exists():
        store.mkdir(parents=True, exist_ok=True)
        model, index = write_torchserve_model(str(work / "ts-model"))
        subprocess.run([str(Path(sys.executable).with_name("torch-model-archiver")),
                        "--model-name", "lite0", "--version", "1.0", "--serialized-file",
                        str(model), "--handler", "image_classifier", "--extra-files", str(index),
                        "--export-path", str(store), "--force"], check=True)  # fmt: skip
    cores = os.cpu_count() or 1
    # tuned: one worker per core, one intra-op thread each; default: TorchServe's own defaults
    kw: dict[str, Any] = {"workers": cores, "threads_per_worker": 1} if tuned else {}
    folder = work / ("ts-tuned" if tuned else "ts-default")
    ts = TorchServe.start(store, ["lite0=lite0.mar"], folder, defaults=not tuned, **kw)
    try:
        try:
            ts.wait_ready(START_TIMEOUT_S)
        except Exception as exc:
            logs = sorted(folder.rglob("*.log"))
            tails = "\n".join(f"--- {p}\n{log_tail(p)}" for p in logs[-2:])
            raise ServerFailed(f"TorchServe not ready: {exc}\n{tails}") from exc
        key = ts.keys()["inference"]
        url = f"{ts.url}/predictions/lite0"

        def request(jpeg: bytes) -> dict[str, Any]:
            return {"url": url, "data": jpeg, "headers": {"Authorization": f"Bearer {key}"}}

        yield url, request
    finally:
        ts.stop()


async def load(request: Callable[[bytes], Any], jpegs: list[bytes], concurrency: int,
               seconds: float, max_requests: int, warmup_s: float) -> dict[str, Any]:  # fmt: skip
    import aiohttp

    latencies: list[float] = []
    errors = 0
    sent = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker(wid: int, until: float, record: bool) -> None:
            nonlocal errors, sent
            i = wid
            while time.perf_counter() < until and (not record or sent < max_requests):
                kw = request(jpegs[i % len(jpegs)])
                i += concurrency
                if record:
                    sent += 1
                started = time.perf_counter()
                async with session.post(**kw) as r:
                    await r.read()
                    ok = r.status == 200
                if record:
                    latencies.append(time.perf_counter() - started)
                    errors += 0 if ok else 1

        # Hard bounds: a server slower than `seconds` per request cannot stretch a run beyond
        # 2x its time; requests still open then are cancelled and reported as `unfinished`.
        warm = [worker(w, time.perf_counter() + warmup_s, False) for w in range(concurrency)]
        await _bounded(warm, 2 * warmup_s + 10)
        started = time.perf_counter()
        runs = [worker(w, started + seconds, True) for w in range(concurrency)]
        await _bounded(runs, 2 * seconds + 10)
        elapsed = time.perf_counter() - started
    lat = np.array(latencies or [float("nan")]) * 1000
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "unfinished": sent - len(latencies),
        "errors": errors,
        "req_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
    }


async def _bounded(coros: list[Any], timeout_s: float) -> None:
    tasks = [asyncio.ensure_future(c) for c in coros]
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


SERVERS: dict[str, Callable[[Path], Any]] = {
    "imgrec": lambda w: kserve_server("imgrec", w),
    "imgrec-int8": lambda w: kserve_server("imgrec-int8", w),
    "imgrec-bf16": lambda w: kserve_server("imgrec-bf16", w),
    "plain-kserve": lambda w: kserve_server("plain", w),
    "torchserve-default": lambda w: torchserve(False, w),
    "torchserve-tuned": lambda w: torchserve(True, w),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--max-requests", type=int, default=3000)
    ap.add_argument("--only", default=",".join(SERVERS))
    ap.add_argument("--imgrec-options", default="{}", help="ServingOptions fields as JSON")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--repeats", type=int, default=1, help="rounds over all servers; medians")
    args = ap.parse_args()
    IMGREC_OPTIONS["json"] = args.imgrec_options
    jpegs = make_jpegs()
    results: dict[str, Any] = {"image": "640x480 JPEG", "model": "efficientnet_lite0 @224",
                               "cpus": os.cpu_count(), "cpu_model": cpu_model(),
                               "repeats": args.repeats,
                               "load_before": os.getloadavg(), "rounds": []}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="imgrec-bench-") as tmp:
        names = args.only.split(",")
        for _ in range(args.repeats):  # servers alternate, so a load spike hits one round
            results["rounds"].append(one_round(args, names, jpegs, Path(tmp)))
            # a server that refused to start (e.g. int8_inaccurate) would refuse again
            names = [n for n in names if "failed" not in results["rounds"][-1].get(n, {})]
    results["load_after"] = os.getloadavg()
    results.update(summarize(results["rounds"]))
    print(json.dumps(results, indent=2))


def one_round(
    args: argparse.Namespace, names: list[str], jpegs: list[bytes], work: Path
) -> dict[str, Any]:
    """Every server once, at every concurrency: ``{server: {concurrency: run}}``."""
    out: dict[str, Any] = {}
    for name in names:
        with contextlib.ExitStack() as stack:
            try:
                _, request = stack.enter_context(SERVERS[name](work))
            except ServerFailed as exc:  # said with the log's tail; the other servers still run
                print(f"{name} failed to start: {exc}", file=sys.stderr, flush=True)
                lines = str(exc).splitlines()
                cause = next((x for x in reversed(lines) if "Error" in x), lines[-1])
                out[name] = {"failed": f"{lines[0]} {cause.strip()}"}
                continue
            out[name] = {}
            for c in (int(x) for x in args.concurrency.split(",")):
                out[name][c] = asyncio.run(load(request, jpegs, c, args.seconds,
                                                args.max_requests, args.warmup))  # fmt: skip
                print(name, out[name][c], file=sys.stderr, flush=True)
    return out


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds per (server, concurrency), and the c=8 ratios taken within each
    round (servers measured minutes apart) then their median."""
    med = lambda xs: round(float(np.median(xs)), 2)  # noqa: E731
    failed = {n: r[n]["failed"] for r in rounds for n in r if "failed" in r[n]}
    rounds = [{n: v for n, v in r.items() if n not in failed} for r in rounds]
    ran = set.intersection(*(set(r) for r in rounds))
    rounds = [{n: v for n, v in r.items() if n in ran} for r in rounds]
    servers: dict[str, list[dict[str, Any]]] = {}
    for name in rounds[0]:
        servers[name] = [
            {"concurrency": c, "req_per_s": med([r[name][c]["req_per_s"] for r in rounds]),
             "p50_ms": med([r[name][c]["p50_ms"] for r in rounds]),
             "p99_ms": med([r[name][c]["p99_ms"] for r in rounds]),
             "errors": sum(r[name][c]["errors"] for r in rounds),
             "unfinished": sum(r[name][c]["unfinished"] for r in rounds)}
            for c in rounds[0][name]
        ]  # fmt: skip
    ours = [n for n in rounds[0] if n.startswith("imgrec") and 8 in rounds[0][n]]
    theirs = [n for n in rounds[0] if not n.startswith("imgrec") and 8 in rounds[0][n]]
    ratios = {
        f"{a}_vs_{b}": [round(r[a][8]["req_per_s"] / r[b][8]["req_per_s"], 2) for r in rounds]
        for a in ours for b in theirs if all(r[b][8]["req_per_s"] > 0 for r in rounds)
    }  # fmt: skip
    return {
        "failed_to_start": failed,
        "servers": servers,
        "ratios_at_c8_per_round": ratios,
        "ratios_at_c8": {k: med(v) for k, v in ratios.items()},
        "p99_at_c8_ms": {a: med([r[a][8]["p99_ms"] for r in rounds]) for a in ours},
    }


if __name__ == "__main__":
    main()
