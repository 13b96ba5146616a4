"""``imgrec export``: write a model as ONNX, a TorchServe archive or a safetensors model dir."""

from __future__ import annotations

import json

import typer

from imgrec.cli.app import app


@app.command("export")
def export_command(
    model: str = typer.Argument(
        ..., help="Model directory, STORE@production / STORE@N, or a pretrained name."
    ),
    fmt: str = typer.Option(..., "--format", help="onnx | mar | safetensors"),
    out: str = typer.Option(..., "--out", help="Output file (onnx) or folder (mar, safetensors)."),
    precision: str = typer.Option(
        "fp32", "--precision", help="fp32 | int8 (onnx only: static QDQ, needs --calibration)."
    ),
    calibration: str = typer.Option(
        "",
        "--calibration",
        help="int8 calibration images: a folder (or glob) with a few dozen images like the "
        "ones you will serve.",
    ),
) -> None:
    """Export MODEL; fp32 ONNX exports are checked against PyTorch (max |diff| <= 1e-4), int8
    ones report their top-1 agreement with fp32 on the calibration images."""
    from imgrec.serving.export import export_model

    result = export_model(model, fmt, out, precision=precision, calibration=calibration or None)
    typer.echo(json.dumps(result.to_dict()))
