"""`imgrec evaluate` and `imgrec predict`: JSON shapes, human output, exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from eval_fixtures import write_color_dataset, write_color_images, write_tiny_model

from imgrec.cli import main
from imgrec.evaluation import METRIC_KEYS


@pytest.fixture(autouse=True)
def _onnx_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("IMGREC_CACHE", str(tmp_path_factory.getbasetemp() / "imgrec-cache"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("cm") / "model", ["blue", "green", "red"])


def test_evaluate_json_and_table(model_dir, tmp_path, capsys):
    data = write_color_dataset(tmp_path / "data", n_train=2, n_val=3)
    assert main(["evaluate", str(model_dir), str(data), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) == set(METRIC_KEYS)
    assert metrics["classes"] == ["blue", "green", "red"] and metrics["n"] == 9
    assert set(metrics["per_class"]["red"]) == {"precision", "recall", "f1", "support"}
    assert len(metrics["confusion_matrix"]) == 3 and sum(map(sum, metrics["confusion_matrix"])) == 9

    out = tmp_path / "eval"
    assert main(["evaluate", str(model_dir), str(data), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and "f1_macro" in text and "report.html" in text
    assert (out / "report.html").is_file() and (out / "metrics.json").is_file()


def test_evaluate_error_is_one_line(model_dir, tmp_path, capsys):
    assert main(["evaluate", str(model_dir), str(tmp_path / "nowhere")]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error[") and "\n" not in err and "Traceback" not in err


def test_predict_json_lines_and_exit_code(model_dir, tmp_path, capsys):
    write_color_images(tmp_path / "imgs", "red", 2, seed=0)
    (tmp_path / "imgs" / "zero.png").write_bytes(b"")
    code = main(
        ["predict", str(tmp_path / "imgs"), "--model", str(model_dir), "--top-k", "2", "--json"]
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1  # one image failed
    assert [Path(r["source"]).name for r in lines] == ["red 000.png", "red 001.png", "zero.png"]
    for r in lines[:2]:
        assert set(r) == {"source", "predictions"}
        assert [set(p) for p in r["predictions"]] == [{"label", "score"}] * 2
    assert lines[2]["error"]["code"] == "empty_file" and lines[2]["error"]["message"]


def test_predict_human_output_and_save_dir(model_dir, tmp_path, capsys):
    write_color_images(tmp_path / "imgs", "green", 1, seed=0)
    save = tmp_path / "saved"
    code = main(
        [
            "predict",
            str(tmp_path / "imgs" / "green 000.png"),
            "-m",
            str(model_dir),
            "--save-dir",
            str(save),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "green 000.png:" in out and " | " in out and str(save) in out
    assert len(list(save.glob("*.jpg"))) == 1


def test_predict_says_when_it_exports_the_model_once(model_dir, tmp_path, monkeypatch, capsys):
    # a first run over a folder exports the model to ONNX (seconds for a real model): the user
    # is told, once; the second run finds the cached export and says nothing
    monkeypatch.setenv("IMGREC_CACHE", str(tmp_path / "fresh-cache"))
    write_color_images(tmp_path / "imgs", "blue", 64, seed=0, size=8)  # ONNX_MIN_IMAGES
    args = ["predict", str(tmp_path / "imgs"), "--model", str(model_dir), "--json"]
    assert main(args) == 0
    first = capsys.readouterr()
    assert "exporting the model to ONNX once" in first.err
    assert len(first.out.splitlines()) == 64  # stdout keeps only the records
    assert main(args) == 0
    again = capsys.readouterr()
    assert "exporting" not in again.err and len(again.out.splitlines()) == 64
