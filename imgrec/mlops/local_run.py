"""Run the Kubeflow training pipeline on this machine with kfp's local runner.

The steps run where ``runner`` says (:mod:`imgrec.mlops.step_runners`): ``subprocess`` runs
each component as a subprocess of this Python (where imgrec is installed), ``container`` runs
each inside the component image (kfp's DockerRunner on podman). The pipeline runs unchanged
either way: same components, same ``dsl.If`` on the gate. Each run gets its own folder holding
every task's artifacts and the log; the summary names the reports::

    summary = run_local("data/mnist5k", "model-store", {"epochs": 3})
    summary = run_local("data/mnist5k", "model-store", runner="container")
    summary["status"], summary["gate"]["passed"], summary["registered_version"]
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import threading
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

from imgrec.errors import ConfigError

DEFAULT_RUNS_DIR = "runs/pipeline"
# kfp.local keeps a run's settings in process globals (``LocalExecutionConfig.instance``: the
# runner, the pipeline root, the workspace it deletes when a run ends; the pipeline being
# built, ``Pipeline._default_pipeline``) and a run redirects sys.stdout: two runs in one
# process at once would write into each other's folders. They take turns.
_ONE_RUN_AT_A_TIME = threading.Lock()
# Reports a run leaves behind: (summary key, task folder, output artifact name).
_REPORTS = (
    ("dataset", "ingest", "summary"),
    ("validation", "validate", "report"),
    ("preprocessing", "preprocess", "summary"),
    ("training", "train", "report"),
    ("evaluation", "evaluate", "report"),
    ("gate", "gate", "decision"),
    ("registration", "register", "summary"),
    ("registration", "not-registered", "summary"),
)


def coerce_params(raw: dict[str, Any]) -> dict[str, Any]:
    """Convert ``NAME=VALUE`` strings to the pipeline parameter types; unknown names refused."""
    import difflib

    from imgrec.pipelines.training import default_params

    defaults = default_params()
    out: dict[str, Any] = {}
    for name, value in raw.items():
        key = name.replace("-", "_")
        if key not in defaults:
            close = difflib.get_close_matches(key, defaults, n=3)
            raise ConfigError(
                f"unknown pipeline parameter {name!r}"
                + (f"; did you mean {', '.join(close)}?" if close else ""),
                hint=f"parameters: {', '.join(defaults)}",
            )
        kind = type(defaults[key])
        try:
            if kind is bool and isinstance(value, str):
                out[key] = value.strip().lower() in ("1", "true", "yes", "on")
            else:
                out[key] = kind(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"pipeline parameter {key} expects {kind.__name__}, got {value!r}"
            ) from exc
    return out


def _absolute(uri: str) -> str:
    from imgrec import storage

    return uri if storage.is_s3(uri) else os.path.abspath(uri)


def _task_dirs(run_root: Path) -> dict[str, Path]:
    """``{task name: its output folder}`` for the (single) pipeline run under ``run_root``."""
    return {Path(p).name: Path(p) for p in glob.glob(str(run_root / "*" / "*")) if Path(p).is_dir()}


def _reports(tasks: dict[str, Path]) -> dict[str, str]:
    found = {}
    for key, task, output in _REPORTS:
        path = tasks.get(task, Path("/nonexistent")) / output
        if path.is_file():
            found[key] = str(path)
    return found


def _failure(log_text: str, tasks: dict[str, Path]) -> tuple[str, str]:
    """(failed step, readable reason) from the run's log and artifacts."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", log_text)
    failed = re.findall(r"Task '([\w-]+)' finished with status FAILURE", plain)
    step = failed[-1] if failed else ""
    summary = tasks.get("validate", Path("/nonexistent")) / "summary"
    if step == "validate" and summary.is_file():
        lines = [ln.strip("- ").strip() for ln in summary.read_text().splitlines()]
        reasons = [ln for ln in lines if ln.startswith("**critical**")]
        return step, "; ".join(r.replace("**critical** ", "") for r in reasons)
    errors = re.findall(r"(imgrec\.errors\.\w+|\w+Error): (.+)", plain)
    return step, (f"{errors[-1][0]}: {errors[-1][1]}" if errors else "see the log")


def run_local(
    data: str,
    store: str,
    params: dict[str, Any] | None = None,
    *,
    runs_dir: str = DEFAULT_RUNS_DIR,
    echo: bool | str = False,
    runner: str = "subprocess",
) -> dict[str, Any]:
    """Run the training pipeline locally and return its summary.

    ``params`` are pipeline parameters (strings are converted to their types). The summary has
    ``status`` (``succeeded``/``failed``), ``failed_step`` and ``error`` on failure, ``gate``
    (``passed``, ``reasons``, ...), ``metrics`` (scalar val metrics), ``registered_version``
    (``None`` when nothing was registered), ``production_version``, ``reports`` (paths),
    ``run_dir``, ``log`` and ``seconds``. With ``echo`` the component logs also go to stderr;
    ``echo="steps"`` shows only each task's start and finish there (the log has everything).
    ``runner`` names where the steps run (``subprocess`` or ``container``).
    """
    from kfp import local

    from imgrec.components import component_image
    from imgrec.mlops.step_runners import STEP_RUNNERS, StepPlace
    from imgrec.mlops.steps import scalar_metrics
    from imgrec.model_store import ModelStore
    from imgrec.pipelines.training import build_pipeline

    step_runner = STEP_RUNNERS.get(runner)
    values = coerce_params(params or {})
    values["data_uri"] = _absolute(data)
    values["store_uri"] = _absolute(store)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    run_root = Path(runs_dir).resolve() / stamp
    run_root.mkdir(parents=True, exist_ok=False)
    log_path = run_root / "pipeline.log"
    started = time.perf_counter()
    summary: dict[str, Any] = {
        "status": "failed",
        "params": values,
        "gate": {"passed": False, "reasons": []},
        "metrics": {},
        "registered_version": None,
        "runner": runner,
        "run_dir": str(run_root),
        "log": str(log_path),
    }
    place = StepPlace(values["data_uri"], values["store_uri"], component_image())
    with (
        _ONE_RUN_AT_A_TIME,
        open(log_path, "w", encoding="utf-8") as log,
        warnings.catch_warnings(),
        step_runner(place) as kfp_runner,
    ):
        # The component image is not named "python"; kfp warns, but subprocess tasks run here.
        warnings.filterwarnings("ignore", message="You may be attemping", category=RuntimeWarning)
        pipeline = build_pipeline()
        local.init(runner=kfp_runner, pipeline_root=str(run_root), raise_on_error=True)
        stream: Any = _Tee(log, steps_only=echo == "steps") if echo else log
        try:
            with (
                contextlib.redirect_stdout(stream),
                contextlib.redirect_stderr(stream),
                _shared_cpu_env(),
            ):
                task = pipeline(**values)
            outputs = task.outputs
            version = int(outputs["registered_version"])
            gate = dict(outputs["gate"])
            summary.update(
                status="succeeded",
                gate=gate,
                metrics=scalar_metrics(dict(outputs["metrics"])),
                registered_version=version or None,
            )
        except Exception as exc:  # a failed task, or kfp refusing a value: report, not crash
            log.flush()
            text = log_path.read_text(encoding="utf-8", errors="replace")
            step, reason = _failure(text, _task_dirs(run_root))
            summary.update(failed_step=step or None, error=reason or str(exc))
    tasks = _task_dirs(run_root)
    summary["reports"] = _reports(tasks)
    summary["production_version"] = ModelStore(values["store_uri"]).production_version()
    summary["seconds"] = round(time.perf_counter() - started, 1)
    (run_root / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


@contextlib.contextmanager
def _shared_cpu_env() -> Any:
    """Environment for the component subprocesses on a shared CPU.

    OpenMP threads that spin while waiting are ruinous when other processes compete for the
    cores: measured on the 2-core machine under load, a small_resnet epoch on mnist5k took
    ~270-510 s with the default policy and ~5-8 s with ``OMP_WAIT_POLICY=PASSIVE``. Set only
    when the user has not chosen, and only for the duration of the run.
    """
    saved = os.environ.get("OMP_WAIT_POLICY")
    if saved is None:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("OMP_WAIT_POLICY", None)


class _Tee:
    """A text stream writing everything to the log file, and to stderr either everything
    (``echo=True``) or only kfp's one-line task start/finish messages (``echo="steps"``)."""

    _STEP_MARKERS = ("Executing task", "finished with status")

    def __init__(self, log: Any, steps_only: bool = False) -> None:
        import sys

        self._log, self._err, self._steps_only = log, sys.stderr, steps_only
        self._pending = ""

    def write(self, text: str) -> int:
        self._log.write(text)
        if not self._steps_only:
            self._err.write(text)
            return len(text)
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if any(marker in line for marker in self._STEP_MARKERS):
                self._err.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self._log.flush()
        self._err.flush()


def pipeline_parameters() -> dict[str, Any]:
    """Names and defaults of the pipeline's parameters (for ``--param`` help)."""
    from imgrec.pipelines.training import default_params

    return default_params()


__all__ = ["coerce_params", "pipeline_parameters", "run_local"]
