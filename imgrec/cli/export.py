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
) -> None:
    """Export MODEL; ONNX exports are checked against PyTorch (max |diff| <= 1e-4)."""
    from serving.export import export_model

    result = export_model(model, fmt, out)
    typer.echo(json.dumps(result.to_dict()))
