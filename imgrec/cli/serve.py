"""``imgrec serve``: serve a model with the KServe predictor (default) or TorchServe."""

from __future__ import annotations

from enum import Enum

import typer

from imgrec.cli.app import app
from imgrec.serving.logs import LOG_LEVELS

LogLevel = Enum("LogLevel", {name: name for name in LOG_LEVELS}, type=str)  # type: ignore[misc]


@app.command("serve")
def serve_command(
    model: str = typer.Argument(
        "efficientnet_lite0",
        help="Model directory, STORE@production / STORE@N, or a pretrained name.",
    ),
    port: int = typer.Option(8080, "--port", help="HTTP port."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (loopback by default)."),
    runtime: str = typer.Option("kserve", "--runtime", help="kserve | torchserve"),
    backend: str = typer.Option("onnx", "--backend", help="onnx | torch (KServe runtime)."),
    precision: str = typer.Option(
        "fp32",
        "--precision",
        help="fp32 | bf16 | int8 (onnx backend, classifiers). bf16: OpenVINO on CPUs with "
        "AMX / AVX512-BF16, ~2x faster per image, no calibration (pip install "
        "'imgrec[openvino]'). int8: top-1 may change on ambiguous images, refused when it "
        "agrees with fp32 on < 85% of the calibration images; needs --calibration "
        "(docs/serving.md, Reduced precision).",
    ),
    calibration: str = typer.Option(
        "",
        "--calibration",
        help="int8 calibration images: a folder (or glob, s3:// prefix) with a few dozen images "
        "like the ones you will serve; calibrated once, then cached. With bf16 (optional): "
        "images to check bf16 against fp32 on.",
    ),
    name: str = typer.Option("imgrec", "--name", help="Model name in the URL."),
    model_workers: int = typer.Option(
        0,
        "--model-workers",
        help="Batches run at once, one thread each (0 = one per core: no fork/join waits).",
    ),
    threads: int = typer.Option(
        0, "--threads", help="Intra-op threads per model call (0 = cores / model workers)."
    ),
    decode_threads: int = typer.Option(2, "--decode-threads", help="Image decode threads."),
    max_batch: int = typer.Option(
        0,
        "--max-batch",
        help="Dynamic batch size limit (0 = auto: 1 for ONNX fp32, where batches only add "
        "waiting; 4 for int8, bf16 and the torch backend).",
    ),
    max_wait_ms: float = typer.Option(4.0, "--max-wait-ms", help="Max wait to fill a batch."),
    max_queue: int = typer.Option(64, "--max-queue", help="Images in flight before 503."),
    timeout: float = typer.Option(10.0, "--timeout", help="Inference timeout, seconds (504)."),
    max_body_mb: float = typer.Option(32.0, "--max-body-mb", help="Request body limit (413)."),
    prediction_log: str = typer.Option(
        "", "--prediction-log", help="Folder, .jsonl file or s3:// prefix for prediction records."
    ),
    capture: str = typer.Option(
        "",
        "--capture",
        help="Folder or s3:// prefix keeping the bytes of a sample of served images, named by "
        "their fingerprint (for `imgrec label export`). Off by default: images may be "
        "personal data (docs/capture.md).",
    ),
    capture_rate: float = typer.Option(
        1.0, "--capture-rate", help="Fraction of distinct images --capture keeps, in (0, 1]."
    ),
    log_level: LogLevel = typer.Option(
        "info",
        "--log-level",
        help="imgrec's own lines (model loaded, URL, swaps); debug adds kserve's and uvicorn's "
        "INFO lines. Warnings and errors always show.",
    ),
    access_log: bool = typer.Option(
        False, "--access-log", help="One uvicorn line per request (off by default)."
    ),
) -> None:
    """Serve MODEL on HOST:PORT until Ctrl-C (V1 and V2 inference protocols)."""
    from imgrec.cli.inputs import require_model, require_paths

    require_model(model)  # before loading anything: the model load takes seconds
    require_paths([calibration], what="calibration images")
    from imgrec.registry import Registry
    from imgrec.serving.limits import RequestLimits
    from imgrec.serving.model import ServingOptions
    from imgrec.serving.server import example_requests

    runtimes: Registry[str] = Registry("serving runtime", list_hint="imgrec serve --help")
    runtimes.add("kserve", "kserve")
    runtimes.add("torchserve", "torchserve")
    chosen = runtimes.get(runtime)
    from imgrec.quantize import check_precision, require_fp32

    check_precision(precision, calibration or None)
    if chosen == "torchserve":
        require_fp32(
            precision,
            "on the KServe predictor's onnx backend",
            "drop --runtime torchserve, or serve in fp32",
        )
        from imgrec.serving.torchserve import serve_torchserve

        serve_torchserve(model, host=host, port=port, name=name)
        return
    from imgrec.serving.backends import BACKENDS
    from imgrec.serving.server import serve

    BACKENDS.get(backend)  # fail fast with suggestions
    options = ServingOptions(
        backend=backend,
        precision=precision,
        calibration=calibration or None,
        model_workers=model_workers or None,
        threads=threads or None,
        decode_threads=decode_threads,
        max_batch_size=max_batch or None,
        max_wait_ms=max_wait_ms,
        max_queue_images=max_queue,
        timeout_s=timeout,
        prediction_log=prediction_log or None,
        capture=capture or None,
        capture_rate=capture_rate,
    )
    limits = RequestLimits(max_body_bytes=int(max_body_mb * 1024 * 1024))
    typer.echo(f"serving {model} as {name!r} on http://{host}:{port}")
    typer.echo(example_requests(name, f"http://{host}:{port}"))
    serve(
        model,
        host=host,
        port=port,
        name=name,
        options=options,
        limits=limits,
        log_level=log_level.value,
        access_log=access_log,
    )
