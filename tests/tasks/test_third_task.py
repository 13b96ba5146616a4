"""A third task added the way docs/extending.md says: its own module plus one registration.

``anyobject`` ("is there any object in the picture?") is a two-class task built from the
classification pieces. It lives in a module written here, outside imgrec, and registers
through the ``imgrec.tasks`` entry point, so the kfp pipeline's step subprocesses find it too.
It then runs through ``imgrec train``, ``imgrec evaluate``, the local pipeline and the server
without any other change to imgrec.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from pipeline_helpers import make_imagefolder

from imgrec.cli import main

TASK_MODULE = '''
"""The toy "anyobject" task: a classifier whose classes are exactly ``empty`` and ``object``."""
import dataclasses
from pathlib import Path

from imgrec.tasks import TASKS, get_task

CLASSES = {"empty", "object"}


def recognizes(data):
    train = Path(data) / "train"
    return train.is_dir() and {p.name for p in train.iterdir() if p.is_dir()} == CLASSES


def train(data, **options):
    return get_task("classify").train(data, task="anyobject", **options)


TASKS.add(
    "anyobject",
    dataclasses.replace(
        get_task("classify"),
        name="anyobject",
        train=train,
        recognizes=recognizes,
        headline_metrics=("accuracy", "f1_macro"),
        gate_metric="f1_macro",
    ),
)
'''

# a small network and a learning rate that separate the two patterns within 8 epochs
SMALL = ["--set", "threads=1", "--set", "lr=0.01",
         "--set", "arch_kwargs={stem_width: 8, widths: [8, 16], depths: [1, 1]}"]  # fmt: skip
ENTRY_POINTS = "[imgrec.tasks]\nanyobject = toy_anyobject\n"


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``toy_anyobject`` and its entry point on ``sys.path`` and ``PYTHONPATH``."""
    site = tmp_path / "site"
    (site / "toy_anyobject-0.1.dist-info").mkdir(parents=True)
    (site / "toy_anyobject.py").write_text(TASK_MODULE)
    meta = site / "toy_anyobject-0.1.dist-info"
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-anyobject\nVersion: 0.1\n")
    (meta / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    repo = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv("PYTHONPATH", f"{site}:{repo}")
    yield site
    from imgrec.tasks import TASKS

    TASKS._items.pop("anyobject", None)  # the registry outlives the test
    sys.modules.pop("toy_anyobject", None)


def _data(root: Path) -> Path:
    return make_imagefolder(root, classes=("empty", "object"), n_train=12, n_val=4)


@pytest.mark.slow
def test_a_third_task_trains_evaluates_and_is_served(plugin: Path, tmp_path: Path, capsys) -> None:
    from imgrec.tasks import get_task, task_names

    assert "anyobject" in task_names()
    data = _data(tmp_path / "data")
    run = tmp_path / "run"
    # no --task: the plugin's `recognizes` claims the data
    code = main(["train", str(data), "--model", "small_resnet", "--epochs", "8", "--img-size", "16",
                 "--batch-size", "8", "--out", str(run), "--quiet", *SMALL])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "f1_macro" in out and "top5" not in out  # the task's own headline metrics
    card = json.loads((run / "model" / "model.json").read_text())
    assert card["task"] == "anyobject" and card["classes"] == ["empty", "object"]

    assert main(["evaluate", str(run / "model"), str(data), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 8 and metrics["accuracy"] == 1.0  # two easy patterns, 8 val images

    from imgrec.serving.served_model import load_runtime

    runtime = load_runtime(str(run / "model"), backend="onnx", threads=1)
    assert runtime.task == "anyobject" and runtime.classes == ["empty", "object"]
    from serving_helpers import start_server, stop_server

    server = start_server(str(run / "model"), tmp_path, options={"threads": 1})
    try:
        image = next((data / "val" / "object").iterdir()).read_bytes()
        reply = server.predict_bytes(image)
        assert reply.status_code == 200, reply.text
        top = reply.json()["predictions"][0]
        assert top["labels"][0] == "object"
    finally:
        stop_server(server)
    assert get_task("anyobject").gate_metric == "f1_macro"


@pytest.mark.slow
def test_a_third_task_runs_through_the_local_pipeline(plugin: Path, tmp_path: Path) -> None:
    from imgrec.mlops import run_local

    data = _data(tmp_path / "data")
    params = {"task": "anyobject", "epochs": "8", "train_threads": "1", "min_images": "8",
              "architecture": "small_resnet", "img_size": "16", "train_overrides":
              "lr=0.01,batch_size=8"}  # fmt: skip
    summary = run_local(str(data), str(tmp_path / "store"), params, runs_dir=str(tmp_path / "r"))
    assert summary["status"] == "succeeded", summary
    assert summary["gate"]["metric"] == "f1_macro"  # the task's default gate metric
    assert summary["registered_version"] == 1
    assert summary["metrics"]["f1_macro"] == 1.0 and summary["metrics"]["n"] == 8
    card = json.loads(next((tmp_path / "store").rglob("model.json")).read_text())
    assert card["task"] == "anyobject"
