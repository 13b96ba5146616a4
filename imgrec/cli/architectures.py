"""`imgrec architectures`: list the registered architectures with their metadata."""

from __future__ import annotations

import json
from typing import Any

import typer

from imgrec.cli.app import app


def architecture_rows() -> list[dict[str, Any]]:
    """One JSON-able dict per registered architecture, sorted by name."""
    from imgrec.models import ARCHITECTURES

    return [
        {
            "name": name,
            "family": spec.family,
            "source": spec.source,
            "params_m": round(spec.params / 1e6, 2),
            "input_size": spec.input_size,
            "min_input_size": spec.min_input_size,
            "feature_dim": spec.feature_dim,
            "pretrained": spec.pretrained_availability,
            "pretrained_tags": list(spec.pretrained_tags),
        }
        for name, spec in ARCHITECTURES.items()
    ]


@app.command("architectures")
def architectures(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON list of objects."),
) -> None:
    """List architectures: family, source, parameters (M), default input size, pretrained weights.

    ``pretrained``: ``offline`` (ImageNet weights shipped with an installed package),
    ``download`` (needs internet; timm / torchvision), ``none`` (train from scratch).
    """
    rows = architecture_rows()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    header = f"{'name':24s} {'family':18s} {'source':12s} {'params':>8s} {'input':>5s}  pretrained"
    typer.echo(header)
    for r in rows:
        typer.echo(
            f"{r['name']:24s} {r['family']:18s} {r['source']:12s} "
            f"{r['params_m']:7.2f}M {r['input_size']:5d}  {r['pretrained']}"
        )
