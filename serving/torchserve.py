"""TorchServe: build ``.mar`` archives, write ``config.properties``, run a real TorchServe.

Token authorization stays on (TorchServe 0.12's default): TorchServe writes ``key_file.json``
into its working directory with an inference and a management key; clients send
``Authorization: Bearer <inference key>``::

    ts = TorchServe.start(model_store, ["imgrec.mar"], workdir, inference_port=8085)
    key = ts.keys()["inference"]
    httpx.post(f"{ts.url}/predictions/imgrec", content=jpeg,
               headers={"Authorization": f"Bearer {key}"})
    ts.stop()
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgrec.errors import TorchServeError

HANDLER = Path(__file__).with_name("torchserve_handler.py")


def _bin(name: str) -> str:
    candidate = Path(sys.executable).with_name(name)
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise TorchServeError(
            f"{name} is not installed",
            hint="pip install torchserve torch-model-archiver (and Java 17 for TorchServe)",
        )
    return found


def build_mar(
    classifier: Any,
    out_dir: str | os.PathLike[str],
    *,
    name: str = "imgrec",
    version: str = "1.0",
) -> Path:
    """Pack ``classifier`` (its model directory; a detector from :func:`load_for_archive` works
    too) with the imgrec handler into ``OUT/NAME.mar``."""
    from imgrec.models.card import save_model_dir

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="imgrec-mar-") as tmp:
        model_dir = Path(tmp) / "model"
        save_model_dir(classifier.module, classifier.card, model_dir)
        extra = ",".join(str(model_dir / f) for f in ("model.json", "weights.safetensors"))
        cmd = [
            _bin("torch-model-archiver"),
            "--model-name", name,
            "--version", version,
            "--handler", str(HANDLER),
            "--extra-files", extra,
            "--export-path", str(out),
            "--force",
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise TorchServeError(f"torch-model-archiver failed: {done.stderr.strip()[-500:]}")
    return out / f"{name}.mar"


def load_for_archive(uri: str) -> Any:
    """What :func:`build_mar` packs: a classifier, or for a task that serves boxes the
    detector (an object with ``.module`` and ``.card``, like a classifier)."""
    from types import SimpleNamespace

    from imgrec.serving.served_model import served_output

    if served_output(uri) == "boxes":
        from imgrec.models.detectors import load_detector

        det, card = load_detector(uri)
        return SimpleNamespace(module=det, card=card)
    from imgrec.predictor import load_model

    return load_model(uri)


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def write_config(
    path: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    inference_port: int = 8085,
    management_port: int | None = None,
    metrics_port: int | None = None,
    workers: int | None = 1,
    extra: dict[str, str] | None = None,
) -> Path:
    """Write a ``config.properties`` binding every endpoint to ``host``.

    ``workers`` per model (TorchServe's CPU guidance: one per core; the intra-op threads per
    worker are set through ``OMP_NUM_THREADS`` by :meth:`TorchServe.start`). Token
    authorization is left on. ``workers=None`` keeps TorchServe's default.
    """
    props = {
        "inference_address": f"http://{host}:{inference_port}",
        "management_address": f"http://{host}:{management_port or free_port(host)}",
        "metrics_address": f"http://{host}:{metrics_port or free_port(host)}",
        "default_workers_per_model": str(workers) if workers else "",
        "number_of_netty_threads": "2",
        "job_queue_size": "200",
        "disable_system_metrics": "true",
        "install_py_dep_per_model": "false",
        "vmargs": "-Xmx1g -XX:+UseSerialGC",
    }
    props = {k: v for k, v in props.items() if v}
    props.update(extra or {})
    out = Path(path)
    out.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return out


@dataclass
class TorchServe:
    """A TorchServe process started by :meth:`start` (foreground, own process group)."""

    process: subprocess.Popen[bytes]
    workdir: Path
    url: str
    management_url: str
    log_path: Path
    models: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        model_store: str | os.PathLike[str],
        models: list[str],
        workdir: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        inference_port: int | None = None,
        workers: int = 1,
        threads_per_worker: int = 1,
        env: dict[str, str] | None = None,
        defaults: bool = False,
    ) -> TorchServe:
        """Start TorchServe with ``models`` (``NAME=FILE.mar`` or ``FILE.mar``) from the store.

        ``defaults=True`` keeps TorchServe's own worker count and thread settings (only the
        addresses are set), i.e. TorchServe "as installed".
        """
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        port = inference_port or free_port(host)
        mport = free_port(host)
        config = write_config(
            work / "config.properties",
            host=host,
            inference_port=port,
            management_port=mport,
            workers=None if defaults else workers,
        )
        run_env = dict(os.environ)
        # TorchServe keeps its pid file in TMPDIR: a private one lets several instances coexist.
        (work / "tmp").mkdir(exist_ok=True)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            run_env.pop(var, None)
            if not defaults:
                run_env[var] = str(threads_per_worker)
        run_env.update(
            TMPDIR=str(work / "tmp"),
            LOG_LOCATION=str(work / "logs"),
            METRICS_LOCATION=str(work / "logs"),
            TS_CONFIG_FILE=str(config),
        )
        run_env.update(env or {})
        log_path = work / "torchserve.out"
        cmd = [
            _bin("torchserve"), "--start", "--foreground", "--ncs",
            "--model-store", str(model_store), "--ts-config", str(config),
            "--models", *models,
        ]  # fmt: skip
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=work, env=run_env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return cls(proc, work, f"http://{host}:{port}", f"http://{host}:{mport}", log_path,
                   [m.split("=")[0].removesuffix(".mar") for m in models])  # fmt: skip

    def keys(self) -> dict[str, str]:
        """The token-auth keys TorchServe generated (``inference``, ``management``)."""
        path = self.workdir / "key_file.json"
        data = json.loads(path.read_text())
        return {
            "inference": data["inference"]["key"],
            "management": data["management"]["key"],
        }

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Wait until every model answers ``GET /models/NAME`` with a READY worker."""
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TorchServeError(f"TorchServe exited early; see {self.log_path}")
            try:
                key = self.keys()["management"]
                ready = all(self._model_ready(httpx, m, key) for m in self.models)
                if ready:
                    return
            except (OSError, KeyError, ValueError, httpx.HTTPError):
                pass
            time.sleep(1.0)
        raise TorchServeError(f"TorchServe not ready after {timeout_s:g} s; see {self.log_path}")

    def _model_ready(self, httpx: Any, name: str, key: str) -> bool:
        r = httpx.get(f"{self.management_url}/models/{name}",
                      headers={"Authorization": f"Bearer {key}"}, timeout=5)  # fmt: skip
        if r.status_code != 200:
            return False
        workers = r.json()[0].get("workers", [])
        return bool(workers) and all(w.get("status") == "READY" for w in workers)

    def stop(self) -> None:
        """Terminate the process group this object started."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def __enter__(self) -> TorchServe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_torchserve(model: str, *, host: str, port: int, name: str = "imgrec") -> None:
    """``imgrec serve --runtime torchserve``: archive MODEL and run TorchServe until Ctrl-C."""
    from imgrec.serving.served_model import resolve_model

    classifier = load_for_archive(resolve_model(model).uri)
    workdir = Path(tempfile.mkdtemp(prefix="imgrec-torchserve-"))
    store = workdir / "model-store"
    build_mar(classifier, store, name=name)
    cores = os.cpu_count() or 1
    ts = TorchServe.start(store, [f"{name}={name}.mar"], workdir, host=host,
                          inference_port=port, workers=cores, threads_per_worker=1)  # fmt: skip
    try:
        ts.wait_ready()
        print(f"TorchServe serving {model} as {name!r} on {ts.url} (token auth on)")
        print(f"keys: {workdir / 'key_file.json'}")
        print(f'curl -s {ts.url}/predictions/{name} -H "Authorization: Bearer '
              f'$(jq -r .inference.key {workdir / "key_file.json"})" -T cat.jpg')  # fmt: skip
        ts.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        ts.stop()
