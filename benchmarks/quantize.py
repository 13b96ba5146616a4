"""Benchmark: INT8 (static QDQ, ONNX Runtime) and bf16 (OpenVINO) vs fp32 for imgrec classifiers.

bf16 columns appear where the CPU has native bf16 (AMX / AVX512-BF16) and OpenVINO is installed:
``all_layers`` (the fp32 file in OpenVINO bf16, every convolution bf16) and what
``--precision bf16`` picks (:func:`imgrec.quantize.bf16_model`: the IR with its first
convolutions kept fp32, checked on the calibration images or on the probe, or refused).

An ``nncf_openvino`` column appears where NNCF is installed (the ``dev`` extra): OpenVINO's own
post-training quantization (:func:`nncf_int8`: MIXED preset, histogram activation ranges, bias
correction, the same convolutions and head kept fp32 as imgrec's int8) run by OpenVINO; it is
measured beside imgrec's int8 but not what ``--precision int8`` runs (BENCHMARKS.md says why).

Two parts, one JSON object on stdout:

1. **Pretrained EfficientNet-Lite0 at 224**: ms/image of the fp32 and int8 ONNX models (one
   intra-op thread and all cores, batch 1 and 8, medians of interleaved repeats), and how far
   int8 is from fp32 on held-out photos: random crops of skimage / scikit-learn / matplotlib
   sample photos that are *not* the photos the calibration crops come from (top-1 agreement,
   agreement where fp32 is confident, fp32 top-1 within int8 top-5, max and mean |logit diff|)
   on 192 crops and on 1000 others; the **noise floor**: fp32 against fp32 with +-0.5 LSB of
   uniform noise on the input pixels (the 8-bit image's own rounding), and int8's agreement on
   the crops whose fp32 top-1 survives every noise draw. Each int8 weight correction in
   ``--corrections`` (:data:`imgrec.int8_weights.WEIGHT_CORRECTIONS`) is measured; the speed
   rows use the default one.
2. **Models trained on labelled data**: EfficientNet-Lite0 on a mnist5k subset (upscaled
   digits), once as the frozen-backbone transfer recipe (30 head epochs) and once fully
   fine-tuned (5 epochs); each calibrated on ~48 training images; accuracy of fp32 and int8 on
   the validation split (the real accuracy check: labels, not agreement).

    .venv/bin/python benchmarks/quantize.py [--repeats 30] [--per-class 50] [--img-size 96]
        [--finetune-epochs 5] [--corrections none,bias,bias_measured,gptq] [--int8-only]
        [--skip-trained]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

# benchmarks/serving.py would shadow the serving package: the repository root comes first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CALIBRATION_IMAGES = 64
HELD_OUT_CROPS = 192
LARGE_HELD_OUT_CROPS = 1000  # a second, larger held-out set (other crops of the same photos)
NOISE_LSB = 0.5  # the 8-bit image's own rounding: +-0.5 of a pixel step
NOISE_DRAWS = 5


def photos() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(calibration photos, held-out photos): disjoint sets of offline sample photos."""
    import matplotlib.cbook
    import skimage.data as sk
    from PIL import Image
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    hopper_path = str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    with Image.open(hopper_path) as im:
        hopper = np.asarray(im.convert("RGB"))
    left, right, _ = sk.stereo_motorcycle()
    calibration = [sk.astronaut(), sk.coffee(), sk.rocket(), left, china, sk.gravel(),
                   sk.brick(), sk.immunohistochemistry(), sk.camera(), sk.moon()]  # fmt: skip
    held_out = [sk.chelsea(), right, hopper, flower, sk.hubble_deep_field(), sk.retina(),
                sk.grass(), sk.coins(), sk.clock(), sk.cell()]  # fmt: skip
    return calibration, held_out


def random_crops(images: list[np.ndarray], n: int, seed: int) -> list[Any]:
    """``n`` square crops (35-100% of the short side) cycling over ``images``, as PIL RGB."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        im = images[k % len(images)]
        im = np.stack([im] * 3, -1) if im.ndim == 2 else im[..., :3]
        h, w = im.shape[:2]
        side = int(rng.uniform(0.35, 1.0) * min(h, w))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        out.append(Image.fromarray(np.ascontiguousarray(im[y : y + side, x : x + side])))
    return out


def session(path: Path, threads: int, precision: str = "fp32") -> Any:
    """The session imgrec runs ``path`` with in ``precision`` (server settings: no spinning;
    bf16: OpenVINO, one stream); ``nncf``: the int8 IR of :func:`nncf_int8` in OpenVINO (the
    layers NNCF left unquantized in f32)."""
    if precision == "nncf":
        from imgrec.inference.openvino import openvino_session

        return openvino_session(path, threads, precision="f32")
    from imgrec.inference.onnx import precision_session

    return precision_session(path, threads, precision)


def nncf_available() -> bool:
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def nncf_int8(fp32: Path, calibration: Any, pre: Any, out: Path) -> Path:
    """NNCF post-training int8 of ``fp32`` (OpenVINO IR at ``out``), calibrated on the same
    images as imgrec's int8 (``calibration``: folder or file list), keeping the same
    convolutions and head fp32; MIXED preset (asymmetric activations), histogram ranges
    (NNCF's default mean of per-image min/max clips: 73% agreement on held-out photos),
    fast bias correction."""
    import logging

    import nncf
    import onnx
    import openvino

    from imgrec.quantize import KEEP_FP32, QuantizeSettings, calibration_files, load_calibration

    # NNCF logs and draws progress bars on stdout, which carries this script's JSON
    logging.getLogger("nncf").setLevel(logging.ERROR)
    settings = QuantizeSettings()
    x, _, _ = load_calibration(calibration_files(calibration), pre, settings)
    graph = onnx.load(str(fp32)).graph
    keep = {n for role in settings.keep_fp32 for n in KEEP_FP32.get(role)(graph)}
    model = openvino.Core().read_model(str(fp32))
    # OpenVINO names a Conv / Gemm after the ONNX node, its bias-free part "<name>/WithoutBiases"
    names = [
        op.get_friendly_name()
        for op in model.get_ordered_ops()
        if op.get_friendly_name().removesuffix("/WithoutBiases") in keep
        and op.get_type_name() in ("Convolution", "GroupConvolution", "MatMul")
    ]
    with contextlib.redirect_stdout(sys.stderr):
        quantized = _nncf_quantize(nncf, model, x, names)
    out.parent.mkdir(parents=True, exist_ok=True)
    openvino.save_model(quantized, str(out), compress_to_fp16=False)
    return out


def _nncf_quantize(nncf: Any, model: Any, x: np.ndarray, names: list[str]) -> Any:
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    return nncf.quantize(
        model,
        nncf.Dataset([x[i : i + 1] for i in range(len(x))]),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(x),
        ignored_scope=nncf.IgnoredScope(names=names),
        advanced_parameters=AdvancedQuantizationParameters(
            activations_range_estimator_params=RangeEstimatorParametersSet.HISTOGRAM
        ),
    )


def bf16_available() -> bool:
    from imgrec.errors import ConfigError
    from imgrec.inference.openvino import require_bf16

    try:
        require_bf16()
    except ConfigError:
        return False
    return True


def imgrec_bf16(fp32: Path, calibration: Any, pre: Any, folder: Path) -> dict[str, Any]:
    """What ``--precision bf16`` picks for ``fp32`` (with ``calibration`` images, or None for
    the probe check): ``{"file": IR path, "fp32_convolutions": n}`` or ``{"refused": why}``."""
    import re

    from imgrec.errors import ModelError
    from imgrec.quantize import bf16_model

    try:
        path = bf16_model(fp32, calibration, pre, cache_dir=folder)
    except ModelError as exc:
        return {"refused": str(exc)}
    kept = re.search(r"fp32first(\d+)", path.name)
    return {"file": path, "fp32_convolutions": int(kept.group(1)) if kept else None}


def bf16_rows(fp32: Path, x: np.ndarray, ref: np.ndarray, choices: dict[str, Any],
              labels: np.ndarray | None = None) -> dict[str, Any]:  # fmt: skip
    """Agreement (and accuracy with ``labels``) of all-layer bf16 and of each imgrec choice."""
    rows: dict[str, Any] = {}
    runs = {"all_layers": fp32, **{k: v["file"] for k, v in choices.items() if "file" in v}}
    for name, path in runs.items():
        got = logits(path, x, precision="bf16")
        row: dict[str, Any] = {"agreement_vs_fp32": agreement(ref, got)}
        if labels is not None:
            row["val_accuracy"] = round(float((got.argmax(1) == labels).mean()), 4)
        if name in choices:
            row["fp32_convolutions"] = choices[name]["fp32_convolutions"]
        rows[name] = row
    for name, choice in choices.items():
        if "refused" in choice:
            rows[name] = {"refused": choice["refused"]}
    return rows


def logits(path: Path, x: np.ndarray, threads: int = 2, precision: str = "fp32") -> np.ndarray:
    sess = session(path, threads, precision)
    return np.concatenate([sess.run(["logits"], {"input": x[i : i + 16]})[0]
                           for i in range(0, len(x), 16)])  # fmt: skip


def speed(paths: dict[str, Path], x: np.ndarray, repeats: int) -> dict[str, Any]:
    """Median ms/image per (precision, threads, batch); precisions interleaved per repeat so
    the other processes on the machine slow all alike. ``paths``: precision -> file."""
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {}
    for threads in sorted({1, cores}):
        sessions = {
            name: session(path, threads, name.split("_")[0]) for name, path in paths.items()
        }
        for batch in (1, 8):
            xb = np.ascontiguousarray(x[:batch])
            times: dict[str, list[float]] = {name: [] for name in sessions}
            for sess in sessions.values():
                sess.run(["logits"], {"input": xb})  # warm-up
            for _ in range(repeats):
                for name, sess in sessions.items():
                    started = time.perf_counter()
                    sess.run(["logits"], {"input": xb})
                    times[name].append((time.perf_counter() - started) * 1000 / batch)
            row = {name: round(float(np.median(t)), 2) for name, t in times.items()}
            for name in times:
                if name != "fp32":
                    row[f"{name}_speedup"] = round(row["fp32"] / row[name], 2)
            out[f"threads={threads} batch={batch}"] = row
    return out


def agreement(ref: np.ndarray, got: np.ndarray) -> dict[str, Any]:
    """How far int8 logits ``got`` are from fp32 ``ref`` (N, K)."""
    e = np.exp(ref - ref.max(1, keepdims=True))
    probs = np.sort(e / e.sum(1, keepdims=True), 1)
    confidence, margin = probs[:, -1], probs[:, -1] - probs[:, -2]  # fp32 top-1 - top-2
    same = ref.argmax(1) == got.argmax(1)
    confident = confidence > 0.5
    top5 = np.argsort(-got, 1)[:, :5]
    diff = np.abs(got - ref)
    return {
        "images": len(ref),
        "top1_agreement": round(float(same.mean()), 4),
        "fp32_confident_images": int(confident.sum()),
        "top1_agreement_where_fp32_p_gt_0.5": (
            round(float(same[confident].mean()), 4) if confident.any() else None
        ),
        "max_fp32_top2_margin_where_changed": round(float(margin[~same].max(initial=0.0)), 4),
        "fp32_top1_in_int8_top5": round(float((top5 == ref.argmax(1)[:, None]).any(1).mean()), 4),
        "max_abs_logit_diff": round(float(diff.max()), 3),
        "mean_abs_logit_diff": round(float(diff.mean()), 4),
        "fp32_logit_range": [round(float(ref.min()), 2), round(float(ref.max()), 2)],
    }


def noise_floor(fp32: Path, x: np.ndarray, ref: np.ndarray, std: Any) -> dict[str, Any]:
    """fp32 against fp32 on ``x`` plus uniform noise of +-:data:`NOISE_LSB` of a pixel step (in
    normalized units: ``NOISE_LSB / 255 / std`` per channel), :data:`NOISE_DRAWS` draws: the
    agreement the 8-bit input's own rounding allows, and which crops keep their fp32 top-1
    under every draw (``stable``, a boolean mask)."""
    rng = np.random.default_rng(0)
    step = (1.0 / 255 / np.asarray(std, np.float32)).reshape(1, -1, 1, 1)
    same = []
    for _ in range(NOISE_DRAWS):
        noise = rng.uniform(-NOISE_LSB, NOISE_LSB, x.shape).astype(np.float32) * step
        same.append(logits(fp32, (x + noise).astype(np.float32)).argmax(1) == ref.argmax(1))
    agree = np.stack(same)
    return {
        "draws": NOISE_DRAWS,
        "top1_agreement_per_draw": [round(float(a.mean()), 4) for a in agree],
        "top1_agreement_mean": round(float(agree.mean()), 4),
        "stable": agree.all(0),
    }


def held_out_rows(ref: dict[str, np.ndarray], got: dict[str, np.ndarray],
                  stable: np.ndarray) -> dict[str, Any]:  # fmt: skip
    """Agreement of ``got`` with fp32 ``ref`` on each held-out set, and on the crops of the
    large set whose fp32 top-1 is stable under the input noise."""
    rows = {name: agreement(ref[name], got[name]) for name in ref}
    large = "large"
    same = ref[large].argmax(1) == got[large].argmax(1)
    rows["large_noise_stable"] = {
        "images": int(stable.sum()),
        "top1_agreement": round(float(same[stable].mean()), 4),
    }
    return rows


def pretrained_part(work: Path, repeats: int, corrections: list[str],
                    others: bool) -> dict[str, Any]:  # fmt: skip
    import torch

    from imgrec.data.transforms import eval_transform
    from imgrec.inference.onnx import export_onnx
    from imgrec.predictor import load_model
    from imgrec.quantize import QuantizeSettings, quantize_onnx

    clf = load_model("efficientnet_lite0")
    pre = clf.card.preprocessing
    calibration_photos, held_out_photos = photos()
    calib = work / "calib-photos"
    calib.mkdir()
    for i, im in enumerate(random_crops(calibration_photos, CALIBRATION_IMAGES, seed=1)):
        im.save(calib / f"crop{i:03d}.jpg", quality=92)
    fp32 = export_onnx(clf, work / "lite0.onnx")
    tf = eval_transform(pre)
    sets: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        for name, n, seed in (("small", HELD_OUT_CROPS, 2), ("large", LARGE_HELD_OUT_CROPS, 3)):
            sets[name] = np.stack([tf(im).numpy() for im in random_crops(held_out_photos, n, seed)])
    x = sets["small"]
    refs = {name: logits(fp32, xs) for name, xs in sets.items()}
    ref = refs["small"]
    floor = noise_floor(fp32, sets["large"], refs["large"], pre.std)
    stable = floor.pop("stable")
    default = QuantizeSettings(min_agreement=0.0)  # measure, do not refuse
    int8: dict[str, Any] = {}
    results = {}
    for correction in corrections:
        settings = replace(default, weight_correction=correction)
        results[correction] = result = quantize_onnx(fp32, calib, pre, settings=settings)
        got = {name: logits(result.path, xs) for name, xs in sets.items()}
        int8[correction] = {
            "calibration_seconds": round(result.seconds, 1),
            "top1_agreement_on_calibration_images": round(result.agreement, 4),
            **held_out_rows(refs, got, stable),
        }
    result = results.get(default.weight_correction) or results[corrections[0]]
    files = {"fp32": fp32, "int8": result.path}
    extra: dict[str, Any] = {}
    if others and nncf_available():
        files["nncf_openvino"] = nncf_int8(fp32, calib, pre, work / "nncf" / "lite0.xml")
        extra["nncf_openvino_agreement_vs_fp32"] = agreement(
            ref, logits(files["nncf_openvino"], x, precision="nncf")
        )
    bf16: dict[str, Any] = {}
    if others and bf16_available():
        choices = {
            "imgrec_with_calibration": imgrec_bf16(fp32, calib, pre, work / "bf16"),
            "imgrec_probe_only": imgrec_bf16(fp32, None, pre, work / "bf16"),
        }
        bf16 = {"bf16": bf16_rows(fp32, x, ref, choices)}
        files["bf16_all_layers"] = fp32
        for name, choice in choices.items():
            if "file" in choice and choice["file"] not in files.values():
                files[f"bf16_{name}"] = choice["file"]
    return {
        "model": "efficientnet_lite0 (offline ImageNet weights), 224 px",
        "settings": {**default.__dict__, "keep_fp32": list(default.keep_fp32)},
        "calibration": f"{result.images} random crops of 10 sample photos",
        "held_out": {
            "small": f"{HELD_OUT_CROPS} random crops of 10 other sample photos (seed 2)",
            "large": f"{LARGE_HELD_OUT_CROPS} random crops of the same 10 photos (seed 3)",
        },
        "noise_floor_fp32_vs_fp32_with_input_noise": {
            "noise": f"uniform +-{NOISE_LSB} of a pixel step (x {NOISE_LSB}/255/std normalized)",
            "images": LARGE_HELD_OUT_CROPS,
            **floor,
            "noise_stable_images": int(stable.sum()),
        },
        "int8_by_weight_correction": int8,
        "int8_in_speed_rows": f"weight_correction {default.weight_correction} (the default)"
        if default.weight_correction in results
        else f"weight_correction {corrections[0]}",
        **extra,
        **bf16,
        "ms_per_image": speed(files, x, repeats),
        "file_mb": {
            "fp32": round(fp32.stat().st_size / 2**20, 1),
            "int8": round(result.path.stat().st_size / 2**20, 1),
        },
    }


RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    # name: (description, train() overrides)
    "frozen": ("frozen backbone + head, 30 epochs (feature cache)",
               {"freeze": "backbone", "feature_cache": True, "lr": 3e-3, "epochs": 30}),
    "finetuned": ("all layers fine-tuned, {epochs} epochs", {"freeze": "none", "lr": 1e-3}),
}  # fmt: skip


def trained_parts(
    work: Path,
    per_class: int,
    val_per_class: int,
    img_size: int,
    finetune_epochs: int,
    corrections: list[str],
    others: bool,
) -> dict[str, Any]:
    """Train each recipe of ``RECIPES`` on one mnist5k subset, then compare fp32 and int8
    accuracy on its validation split (calibration: ~48 training images)."""
    from transfer import subset  # benchmarks/transfer.py (this script's folder is on sys.path)

    from imgrec.data.samples import write_sample
    from imgrec.tasks.classify.train import train

    write_sample("mnist5k", work / "mnist5k", progress=False)
    data = subset(work / "mnist5k", work / "subset", per_class, val_per_class)
    common: dict[str, Any] = {
        "model": "efficientnet_lite0", "pretrained": True, "img_size": img_size,
        "epochs": finetune_epochs, "batch_size": 32, "augment": "none", "scheduler": "cosine",
    }  # fmt: skip
    out: dict[str, Any] = {}
    for name, (what, overrides) in RECIPES.items():
        started = time.perf_counter()
        trained = train(data, out=work / name, quiet=True, report=False,
                        **{**common, **overrides})  # fmt: skip
        row = {
            "model": f"efficientnet_lite0 {what.format(epochs=finetune_epochs)}, {img_size} px",
            "data": f"mnist5k subset: {per_class}/class train, {val_per_class}/class val",
            "train_seconds": round(time.perf_counter() - started, 1),
            "train_reported_val_accuracy_torch": round(float(trained.metrics["accuracy"]), 4),
        }
        out[name] = {
            **row,
            **int8_accuracy(work / name, trained.model_dir, data, corrections, others),
        }
    return out


def int8_accuracy(work: Path, model_dir: str, data: Path, corrections: list[str],
                  others: bool) -> dict[str, Any]:  # fmt: skip
    """fp32 vs int8 ONNX accuracy of ``model_dir`` on ``data/val``, for each weight
    correction; NNCF and bf16 too with ``others``."""
    import torch

    from imgrec.data.images import image_files, load_image
    from imgrec.data.transforms import eval_transform
    from imgrec.inference.onnx import export_onnx
    from imgrec.predictor import load_model
    from imgrec.quantize import QuantizeSettings, quantize_onnx

    clf = load_model(model_dir)
    pre = clf.card.preprocessing
    # Calibration: training images, a few per class (what a user has at hand).
    train_files = image_files(data / "train")
    calib = [train_files[i] for i in range(0, len(train_files), max(1, len(train_files) // 48))]
    fp32 = export_onnx(clf, work / "fp32.onnx")
    val_files = image_files(data / "val")
    labels = np.array([clf.classes.index(Path(f).parent.name) for f in val_files])
    tf = eval_transform(pre)
    with torch.inference_mode():
        x = np.stack([tf(load_image(f)).numpy() for f in val_files])
    ref = logits(fp32, x)
    int8: dict[str, Any] = {}
    for correction in corrections:
        settings = QuantizeSettings(min_agreement=0.0, weight_correction=correction)
        result = quantize_onnx(fp32, calib, pre, settings=settings)
        got = logits(result.path, x)
        int8[correction] = {
            "val_accuracy": round(float((got.argmax(1) == labels).mean()), 4),
            "calibration_images": result.images,
            "calibration_seconds": round(result.seconds, 1),
            "top1_agreement_on_calibration_images": round(result.agreement, 4),
            "would_be_refused": result.agreement < QuantizeSettings().min_agreement,
            "agreement_vs_fp32": agreement(ref, got),
        }
    extra: dict[str, Any] = {}
    if others and nncf_available():
        ir = nncf_int8(fp32, calib, pre, work / "nncf" / "model.xml")
        got_nncf = logits(ir, x, precision="nncf")
        extra["nncf_openvino"] = {
            "val_accuracy": round(float((got_nncf.argmax(1) == labels).mean()), 4),
            "agreement_vs_fp32": agreement(ref, got_nncf),
        }
    bf16: dict[str, Any] = {}
    if others and bf16_available():
        choices = {
            "imgrec_with_calibration": imgrec_bf16(fp32, calib, pre, work / "bf16"),
            "imgrec_probe_only": imgrec_bf16(fp32, None, pre, work / "bf16"),
        }
        bf16 = {"bf16": bf16_rows(fp32, x, ref, choices, labels)}
    return {
        **bf16,
        "val_images": len(val_files),
        "fp32_val_accuracy": round(float((ref.argmax(1) == labels).mean()), 4),
        "int8_by_weight_correction": int8,
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--val-per-class", type=int, default=50)
    parser.add_argument("--img-size", type=int, default=96)
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument(
        "--corrections",
        default="none,bias,bias_measured,gptq",
        help="comma-separated int8 weight corrections to measure "
        "(imgrec.int8_weights.WEIGHT_CORRECTIONS); the speed rows use the default one",
    )
    parser.add_argument(
        "--int8-only", action="store_true", help="leave out the NNCF and bf16 columns"
    )
    parser.add_argument("--skip-trained", action="store_true", help="only the pretrained part")
    args = parser.parse_args()
    corrections = [c.strip() for c in args.corrections.split(",") if c.strip()]
    others = not args.int8_only

    import onnxruntime
    from machine import cpu_model  # this script's folder is on sys.path

    work = Path(tempfile.mkdtemp(prefix="imgrec-bench-quantize-"))
    os.environ["IMGREC_CACHE"] = str(work / "cache")
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        report = {
            "benchmark": "INT8 static QDQ (ONNX Runtime) and bf16 (OpenVINO) vs fp32, CPU",
            "onnxruntime": onnxruntime.__version__,
            "cpu_model": cpu_model(),
            "cores": os.cpu_count(),
            "load_average_before": load_before,
            "pretrained": pretrained_part(work, args.repeats, corrections, others),
            "trained_on_mnist5k": None
            if args.skip_trained
            else trained_parts(
                work,
                args.per_class,
                args.val_per_class,
                args.img_size,
                args.finetune_epochs,
                corrections,
                others,
            ),
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
