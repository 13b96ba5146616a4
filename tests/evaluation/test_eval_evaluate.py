"""evaluate() end to end on a real (tiny) model dir: figures equal scikit-learn on the
predictions of the independent ``Classifier.predict`` path; classes mapped by name; outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

sys.path.insert(0, str(Path(__file__).parent))

from eval_fixtures import write_color_dataset, write_tiny_model

from imgrec.errors import DatasetError
from imgrec.evaluation import METRIC_KEYS
from imgrec.predictor import load_model
from imgrec.tasks.classify.evaluate import evaluate

# the model knows one class more than the data, in another order: mapping must go by name
MODEL_CLASSES = ["green", "purple", "red", "blue"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_color_dataset(tmp_path_factory.mktemp("colors") / "data")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("model") / "model", MODEL_CLASSES)


def test_metrics_equal_sklearn_on_independent_predictions(dataset, model_dir, tmp_path):
    metrics = evaluate(str(model_dir), str(dataset), split="val", batch_size=4)
    assert set(metrics) == set(METRIC_KEYS)
    assert metrics["classes"] == MODEL_CLASSES and metrics["n"] == 18

    clf = load_model(str(model_dir))
    files = sorted((dataset / "val").glob("*/*.png"))
    y_true = [MODEL_CLASSES.index(p.parent.name) for p in files]
    y_pred = [p.class_ids[0] for p in clf.predict([str(f) for f in files], top_k=1)]
    labels = list(range(len(MODEL_CLASSES)))
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=avg, zero_division=0
        )
        assert metrics[f"precision_{avg}"] == pytest.approx(p, abs=1e-12)
        assert metrics[f"recall_{avg}"] == pytest.approx(r, abs=1e-12)
        assert metrics[f"f1_{avg}"] == pytest.approx(f, abs=1e-12)
    assert metrics["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=labels).tolist()
    assert metrics["per_class"]["purple"]["support"] == 0  # in the model, not in the data
    assert metrics["top5"] == 1.0  # four classes: k = 4 covers them all
    assert 0.0 <= metrics["ece"] <= 1.0


def test_outputs_written_to_run_dir(dataset, model_dir, tmp_path):
    history = tmp_path / "history.jsonl"
    history.write_text(
        "\n".join(
            json.dumps(
                {
                    "epoch": e,
                    "train_loss": 1 / e,
                    "val_loss": 1 / e,
                    "val_accuracy": 0.5,
                    "lr": 0.1,
                    "seconds": 1.0,
                }
            )
            for e in (1, 2, 3)
        )
        + "\n",
        encoding="utf-8",
    )
    metrics = evaluate(model_dir, dataset, out_dir=tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    names = {p.name for p in (tmp_path / "figures").glob("*.png")}
    assert {"confusion_matrix.png", "per_class.png", "curves.png", "worst_mistakes.png"} <= names
    for png in (tmp_path / "figures").glob("*.png"):
        with Image.open(png) as im:
            assert im.format == "PNG"
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == len(names)


def test_data_class_unknown_to_model_is_a_dataset_error(dataset, tmp_path):
    other = write_tiny_model(tmp_path / "m", ["red", "green"])
    with pytest.raises(DatasetError, match="'blue'") as info:
        evaluate(other, dataset)
    assert info.value.code == "invalid_dataset"


def test_missing_split_and_bad_files(dataset, model_dir, tmp_path):
    with pytest.raises(DatasetError, match="test"):
        evaluate(model_dir, dataset, split="test")
    # a corrupt file in val is skipped (logged), the rest evaluated
    data = write_color_dataset(tmp_path / "d", n_train=2, n_val=3)
    (data / "val" / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    metrics = evaluate(model_dir, data)
    assert metrics["n"] == 9
    assert np.sum(metrics["confusion_matrix"]) == 9
