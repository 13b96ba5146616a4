"""`imgrec predict SOURCE...`: top-k labels for images, files, folders, globs or s3:// prefixes.

One line per image (JSON lines with --json); a bad image prints an error line and the exit
code is 1 at the end. The task comes from the model card (see `imgrec evaluate`).
"""

from __future__ import annotations

import json
from typing import Any

import typer

from imgrec.cli.app import app, show_one_time_work


@app.command("predict")
def predict(
    sources: list[str] = typer.Argument(
        ..., help="Image files, folders (recursive), globs or s3:// prefixes."
    ),
    model: str = typer.Option(
        "efficientnet_lite0",
        "--model",
        "-m",
        help="Model directory (local or s3://) or pretrained name (default: offline ImageNet).",
    ),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Labels per image."),
    save_dir: str = typer.Option(
        None, "--save-dir", help="Also write each image with its top label drawn on it here."
    ),
    batch_size: int = typer.Option(
        None,
        "--batch-size",
        "-b",
        min=1,
        help="Images per inference call (default: the task's; classifiers: 4 with ONNX Runtime "
        "on CPU, its calls running on the decode threads, 32 with PyTorch).",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    conf: float = typer.Option(
        None,
        "--conf",
        help="Detectors: keep boxes scoring at least this (0-1; default: the threshold chosen "
        "on val at training, kept in the model card).",
    ),
    iou: float = typer.Option(
        None, "--iou", help="Detectors: IoU above which NMS drops the lower box (0-1)."
    ),
    max_det: int = typer.Option(
        None, "--max-det", min=1, help="Detectors: most boxes per image (default 100)."
    ),
    precision: str = typer.Option(
        "fp32",
        "--precision",
        help="fp32 (default), bf16 or int8: classifiers only, on CPU. bf16: OpenVINO on CPUs "
        "with AMX / AVX512-BF16 (pip install 'imgrec[openvino]'), about half the inference "
        "CPU, no calibration. int8: ONNX Runtime, needs --calibration; a larger accuracy "
        "trade-off (see BENCHMARKS.md).",
    ),
    calibration: str = typer.Option(
        None,
        "--calibration",
        help="With --precision int8: folder (local or s3://) or glob of a few dozen images like "
        "the ones you predict (not necessarily the same); calibrated once, then cached. int8 is "
        "refused (int8_inaccurate) when it visibly breaks the model. With bf16 (optional): "
        "images to check bf16 against fp32 on (bf16_inaccurate).",
    ),
) -> None:
    """Predict labels with scores for each image; exit code 1 if any image failed.

    A local SOURCE path that does not exist stops the command before the model loads.
    """
    from imgrec.api import task_of_model
    from imgrec.cli.inputs import require_model, require_paths

    # before loading anything: the model load takes seconds
    require_paths(sources, what="image source", hint="pass image files, folders or globs")
    require_model(model)
    require_paths([calibration], what="calibration images")
    from imgrec.quantize import check_precision

    check_precision(precision, calibration or None)
    show_one_time_work()  # a first ONNX export or int8 calibration says so on stderr
    task = task_of_model(model)
    failed = 0
    options: dict[str, Any] = {} if batch_size is None else {"batch_size": batch_size}
    if precision != "fp32":  # each task's predict refuses what it cannot run
        options.update(precision=precision, calibration=calibration)
    boxes = {"score_threshold": conf, "iou_threshold": iou, "max_detections": max_det}
    given = {k: v for k, v in boxes.items() if v is not None}
    if given and task.serves != "boxes":
        from imgrec.errors import ConfigError

        raise ConfigError(
            f"--conf, --iou and --max-det apply to detectors; {model} is a {task.name!r} model",
            hint="drop them, or pass a detection model with --model",
        )
    options.update(given)
    records = task.predict(sources, model=model, top_k=top_k, save_dir=save_dir, **options)
    for record in records:
        failed += "error" in record
        typer.echo(json.dumps(record, ensure_ascii=False) if as_json else format_record(record))
    if failed:
        if not as_json:
            typer.echo(f"{failed} image(s) failed", err=True)
        raise typer.Exit(1)


def format_record(record: dict[str, Any]) -> str:
    """One readable line: ``source: label score | label score ...`` or ``source: error[code]``."""
    source = _printable(record.get("source", ""))
    if "error" in record:
        err = record["error"]
        return f"{source}: error[{err.get('code')}] {_printable(err.get('message', ''))}"
    parts = []
    for p in record.get("predictions", record.get("detections", [])):  # detect: boxes
        text = f"{_printable(p.get('label', ''))} {p.get('score', 0.0):.3f}"
        if "box" in p:
            text += " [" + ", ".join(f"{v:.0f}" for v in p["box"]) + "]"
        parts.append(text)
    saved = f"  -> {_printable(record['saved'])}" if "saved" in record else ""
    return f"{source}: {' | '.join(parts) or '(nothing found)'}{saved}"


def _printable(text: Any) -> str:
    # names are metadata: no terminal control sequences from file names or labels
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))
