"""End to end through the CLI: a dataset with bad and tricky files trains; bad ones are listed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from image_fixtures import BAD_CODES
from train_fixtures import make_imagefolder

from imgrec.cli import main
from imgrec.models.card import read_model_dir


@pytest.mark.slow
def test_cli_train_with_bad_files(
    tmp_path: Path,
    bad_images: Callable[[str | Path], dict[str, Path]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = make_imagefolder(tmp_path / "my data")
    written = bad_images(data / "train" / "a")
    n_good_extra = len(written) - len(BAD_CODES)
    run = tmp_path / "run dir"
    code = main(
        ["train", str(data), "--model", "small_resnet", "--epochs", "2", "--img-size", "16",
         "--batch-size", "16", "--out", str(run), "--quiet",
         "--set", "arch_kwargs={stem_width: 8, widths: [8, 16], depths: [1, 1]}",
         "--set", "threads=1"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert f"model:   {run / 'model'}" in out and "report.html" in out and "accuracy" in out

    report = json.loads((run / "data_report.json").read_text())
    listed = {Path(b["path"]).name: b for b in report["bad"]}
    for key, expected in BAD_CODES.items():
        entry = listed[written[key].name]
        assert entry["code"] == expected and entry["reason"], key
    assert len(listed) == len(BAD_CODES)

    card, _ = read_model_dir(run / "model")
    assert card.dataset["counts"]["train"] == 96 + n_good_extra  # every good file was used
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n"] == 18
    matrix = metrics["confusion_matrix"]  # rows: true class; the diagonal is what was right
    assert metrics["accuracy"] == sum(matrix[i][i] for i in range(len(matrix))) / 18
    assert card.metrics["accuracy"] == metrics["accuracy"]  # the card keeps the run's figure
    assert (run / "report.html").is_file()
    assert {p.name for p in (run / "figures").glob("*.png")} >= {"confusion_matrix.png"}


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_imagefolder(tmp_path / "d", n_train=4, n_val=2)
    code = main(["train", str(data), "--set", "epoch=3", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code != 0
    assert "error[invalid_config]" in err and "did you mean 'epochs'" in err
    assert "Traceback" not in err
    code = main(["train", str(data), "--resume"])
    assert code != 0 and "--out" in capsys.readouterr().err
