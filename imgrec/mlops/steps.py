"""One function per pipeline step, working on plain folders: what each KFP component calls.

The components in ``components/`` only translate between Kubeflow artifacts and these
functions, so every step can be run and tested without Kubeflow::

    meta = ingest_step("data/mnist5k", "out/manifest")
    validate_step("out/manifest", "out/validation", {"max_unreadable_fraction": 0.1})
    pre = preprocess_step("out/manifest", "out/pre", model="auto")
    train_step("out/pre", "out/model", "out/run")
    results = evaluate_step("out/model", "out/manifest", "out/eval")
    decision = gate_step(results, "out/manifest", "model-store", "out/gate", {"metric": "accuracy"})
    version = register_step("out/model", "model-store", {"metrics": results})

Evaluation and the gate use the ingested (original) images, the same ones inference receives,
so the candidate and the production model are compared on identical data.

The task (``classify``, ``detect`` or any registered one) is given to ``ingest_step`` and
recorded in the manifest; every later step takes what differs per task from the task's
``TaskSpec`` (``imgrec.tasks``): its ``pipeline`` steps, gate metrics and trainer.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imgrec import storage
from imgrec.config import parse_key_values
from imgrec.errors import ConfigError
from imgrec.mlops.gate import GATE_METRICS
from imgrec.mlops.ingest import MANIFEST_META, manifest_task
from imgrec.mlops.new_data import has_holdout
from imgrec.mlops.preprocess import CONFIG_JSON
from imgrec.tasks import PipelineSteps, TaskSpec, get_task

# What evaluate reports as scalars: every metric the gate can decide on, plus two that
# describe the run (detection's chosen score threshold, the number of images).
SCALAR_METRICS = (*GATE_METRICS, "score_threshold", "n")


def ingest_step(
    data_uri: str,
    out_dir: str,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    task: str = "classify",
    new_data_uri: str = "",
    new_holdout_fraction: float = 0.3,
    new_data_share: float = 0.5,
) -> dict:
    """Ingest ``data_uri`` into a manifest folder for ``task``; returns ``manifest.json``'s
    content (with ``task``). Detection data keep their own splits (``val_fraction`` unused).
    ``new_data_uri``: new labelled images joining train, ``new_holdout_fraction`` of them held
    out for the gate (:mod:`imgrec.mlops.new_data`; classification)."""
    spec = get_task(task)
    meta = {**_steps(spec).ingest(data_uri, out_dir, val_fraction, seed), "task": spec.name}
    _stamp_task(storage.join(out_dir, MANIFEST_META), spec.name)
    if not new_data_uri:
        return meta
    if spec.name != "classify":
        raise ConfigError(
            f"new_data_uri is supported for task=classify, not {task!r}",
            hint="merge the new boxes into the detection dataset's train split instead",
        )
    from imgrec.mlops.new_data import add_new_data

    merged = add_new_data(
        out_dir, new_data_uri, holdout_fraction=new_holdout_fraction, seed=seed,
        share=new_data_share,
    )  # fmt: skip
    _stamp_task(storage.join(out_dir, MANIFEST_META), spec.name)
    return {**merged, "task": spec.name}


def _steps(spec: TaskSpec) -> PipelineSteps:
    if spec.pipeline is None:
        raise ConfigError(
            f"task {spec.name!r} has no pipeline steps",
            hint="train it with `imgrec train`; its TaskSpec sets no `pipeline`",
        )
    return spec.pipeline


def _stamp_task(json_uri: str, task: str) -> None:
    """Record ``task`` in a JSON file a task's step wrote (the later steps read it back)."""
    content = json.loads(storage.read_text(json_uri))
    if content.get("task") != task:
        storage.write_text(json_uri, json.dumps({**content, "task": task}, indent=1))


def ingest_summary(meta: dict[str, Any]) -> str:
    """The ingest step's Markdown summary, for the manifest's task."""
    return _steps(get_task(str(meta.get("task", "classify")))).markdown(meta)


def validate_step(manifest_dir: str, out_dir: str, thresholds: dict[str, Any]) -> dict:
    """Run the validation suite; writes the reports; raises ``ValidationFailedError``."""
    from imgrec.mlops.validate import ValidationThresholds

    checked = ValidationThresholds.from_dict(thresholds)
    return _steps(get_task(manifest_task(manifest_dir))).validate(manifest_dir, out_dir, checked)


def preprocess_step(
    manifest_dir: str,
    out_dir: str,
    *,
    task: str = "classify",
    model: str = "auto",
    img_size: int = 0,
    epochs: int = 0,
    device: str = "cpu",
    overrides: str = "",
    init_from: str = "",
    store_uri: str = "",
) -> dict:
    """Resolve the training config (and, for classification, shrink the images); returns the
    stats and the resolved config. ``overrides``: ``key=value,...`` training options.
    ``init_from="production"``: warm start from the store's production model (its
    architecture, input size, preprocessing and weights; from scratch when there is none),
    for :data:`WARM_START_EPOCHS` epochs unless ``epochs`` says otherwise; when the manifest
    holds new labelled data, for :data:`NEW_DATA_EPOCHS` and with the augmentation that
    imitates a camera change (:data:`~imgrec.mlops.new_data.NEW_DATA_AUGMENT`) unless
    ``overrides`` sets ``augment``."""
    ingested = manifest_task(manifest_dir)
    if task != ingested:
        raise ConfigError(
            f"preprocess got task={task!r} but the data were ingested for task={ingested!r}",
            hint="pass the same task to every step",
        )
    options = parse_overrides(overrides)
    warm = warm_start(init_from, store_uri, task)
    augment = ""
    if warm:
        model, img_size = warm.pop("model"), warm.pop("img_size")
        options.update(warm)
        new_data = task == "classify" and has_holdout(manifest_dir)
        if not epochs and "epochs" not in options:
            epochs = NEW_DATA_EPOCHS if new_data else WARM_START_EPOCHS
        augment = _new_data_augment(options) if new_data else ""
    result = _steps(get_task(task)).preprocess(
        manifest_dir,
        out_dir,
        model=model,
        img_size=img_size,
        epochs=epochs,
        device=device,
        **options,
    )
    if warm:
        result.setdefault("notes", []).append(f"warm start from {options['weights']}")
        if augment:
            result["notes"].append(augment)
    _stamp_task(storage.join(out_dir, CONFIG_JSON), task)
    return result


# Epochs of a warm-started run when none are given: the from-scratch recipe's schedule (10 for
# mnist5k) would re-learn what the weights already know; 3 with the new data's training mix
# recover the "new camera" shift as well as 5 within a point (BENCHMARKS.md, the learning loop).
WARM_START_EPOCHS = 3
# ... and with new labelled data, trained with the "camera" augmentation (NEW_DATA_AUGMENT):
# the augmented images take longer to learn; at 3 epochs class '7' fell beyond the gate's
# per-class tolerance on base val, and at 5 once in the pipeline too. 10 epochs: shifted
# digits 0.954 -> 0.964 (mean of two seeds; a model trained on the exact shift reaches
# 0.968-0.971), plain val 0.985 -> 0.988, within the 5-minute trigger-to-promoted goal
# (BENCHMARKS.md, the learning loop).
NEW_DATA_EPOCHS = 10


def _new_data_augment(options: dict[str, Any]) -> str:
    """Set ``options["augment"]`` for a warm start on new labelled data (unless it is set);
    returns a note, or "" when nothing was set."""
    from imgrec.mlops.new_data import NEW_DATA_AUGMENT

    if "augment" in options:
        return ""
    options["augment"] = NEW_DATA_AUGMENT
    return (
        f"augment={NEW_DATA_AUGMENT}: a warm start on new data (rotation, stroke thickness, "
        "blur, as a new camera's; train_overrides augment=... to choose another)"
    )


def warm_start(init_from: str, store_uri: str, task: str) -> dict[str, Any]:
    """Training options that start from the production model (``{}``: from scratch)."""
    if init_from in ("", "none"):
        return {}
    if init_from != "production":
        raise ConfigError(
            f"unknown init_from {init_from!r}", hint="use production, or leave it empty"
        )
    from imgrec.model_store import ModelStore
    from imgrec.models.card import read_card

    current = ModelStore(store_uri).production()
    if current is None:  # the very first run: nothing to start from
        return {}
    card = read_card(current.model_uri)
    if card.task != task:
        raise ConfigError(
            f"init_from=production: the production model is a {card.task!r} model, "
            f"this run trains {task!r}",
            hint="use a separate model store per task",
        )
    return {
        "model": card.architecture,
        "img_size": card.preprocessing.input_size,
        "arch_kwargs": dict(card.arch_kwargs),
        "weights": storage.join(current.model_uri, "weights.safetensors"),
    }


def parse_overrides(text: str) -> dict[str, Any]:
    """``"max_seconds=30, batch_size=4"`` -> ``{"max_seconds": 30, "batch_size": 4}``.

    Values are read as YAML scalars; the trainer's config rejects unknown keys with suggestions.
    """
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return parse_key_values(parts, flag="train_overrides", example="max_seconds=60")


def preprocess_markdown(result: dict[str, Any]) -> str:
    """A short Markdown note: the recipe chosen and what was cached."""
    cfg = result["config"]
    if "geometry" not in result:  # detection: pass-through
        lines = [
            "## Preprocessing",
            "",
            f"Detector `{cfg['model']}` on `{cfg.get('backbone', '')}` at {cfg['img_size']} px, "
            f"{cfg['epochs']} epochs (time budget {cfg.get('time_budget') or 'none'} s), "
            f"batch {cfg['batch_size']}; {result['images']} images used as they are.",
            "",
        ]
        return "\n".join(lines + [f"- {n}" for n in result.get("notes", [])]) + "\n"
    geo = result["geometry"]
    lines = [
        "## Preprocessing",
        "",
        f"Recipe: `{cfg['model']}` at {cfg['img_size']} px, {_length(cfg)}, "
        f"batch {cfg['batch_size']}.",
        f"Geometry: resize {geo['resize_size']}, crop {geo['crop']} to {geo['input_size']}.",
        f"{result['resized']} of {result['images']} images cached at the training size "
        f"({result['bytes_before']:,} -> {result['bytes_after']:,} bytes); "
        f"{result['kept']} already small enough.",
        "",
    ]
    lines += [f"- {n}" for n in result.get("notes", [])]
    return "\n".join(lines) + "\n"


def _length(cfg: dict[str, Any]) -> str:
    if cfg.get("time_budget"):
        return f"a {cfg['time_budget']:g} s time budget (at most {cfg['epochs']} epochs)"
    return f"{cfg['epochs']} epochs"


def train_step(
    data_dir: str, model_dir: str, run_dir: str, *, device: str = "auto", threads: int = 0
) -> dict:
    """Train with the resolved config of the preprocess step (the task's own trainer, from
    ``imgrec.tasks.get_task``); copy the best model to ``model_dir`` (a model directory).
    Returns the val metrics of the run. In a distributed run (a PyTorchJob's pods under
    torchrun) every rank trains and rank 0 alone copies the model."""
    from imgrec.engine.distributed import env_world

    payload = json.loads(storage.read_text(storage.join(data_dir, CONFIG_JSON)))
    task = str(payload.pop("task", "classify"))
    data, config = _steps(get_task(task)).train_inputs(data_dir, payload)
    config["device"] = device  # every task's trainer has one (auto | cpu | cuda)
    if threads:
        config["threads"] = threads
    result = get_task(task).train(data, config=config, out=run_dir, quiet=True)
    if env_world().main:
        copy_tree(result.model_dir, model_dir)
    return dict(result.metrics)


def copy_tree(src: str, dst: str) -> None:
    """Copy every file under ``src`` to the same relative path under ``dst`` (local/s3)."""
    for f in storage.list_files(src):
        rel = os.path.relpath(f, src) if not storage.is_s3(f) else f[len(src.rstrip("/")) + 1 :]
        storage.write_bytes(
            storage.join(dst, *rel.replace(os.sep, "/").split("/")), storage.read_bytes(f)
        )


def evaluate_step(model_dir: str, manifest_dir: str, out_dir: str, *, split: str = "val") -> dict:
    """Evaluate ``model_dir`` on the ingested images of ``split``; writes ``metrics.json``,
    ``figures/`` and ``report.html`` to ``out_dir`` and returns the metrics dict."""
    spec = get_task(manifest_task(manifest_dir))
    data = _steps(spec).eval_data(manifest_dir)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return spec.evaluate(model_dir, data, split=split, out_dir=out_dir)


def confusion_labels(metrics: dict[str, Any]) -> list[str]:
    """Row/column names of ``metrics["confusion_matrix"]`` (detection adds ``background``)."""
    classes = [str(c) for c in metrics["classes"]]
    extra = len(metrics["confusion_matrix"]) - len(classes)
    return classes + ["background"] * extra


@contextlib.contextmanager
def _production_model(store_uri: str) -> Iterator[tuple[int | None, str | None]]:
    """``(version, local model dir)`` of the store's production model; ``(None, None)``."""
    from imgrec.model_store import ModelStore

    store = ModelStore(store_uri)
    current = store.production()
    if current is None:
        yield None, None
    elif storage.is_s3(current.model_uri):
        with tempfile.TemporaryDirectory(prefix="imgrec-prod-") as tmp:
            yield current.version, str(store.fetch(current.version, tmp))
    else:
        yield current.version, current.model_uri


def _evaluate_same_task(model_dir: str, manifest_dir: str, split: str) -> dict[str, Any]:
    task = manifest_task(manifest_dir)
    card = json.loads(storage.read_text(storage.join(model_dir, "model.json")))
    if card.get("task", "classify") != task:
        raise ConfigError(
            f"the store's production model is a {card.get('task', 'classify')!r} model; "
            f"this run trains {task!r}",
            hint="use a separate model store per task (store_uri)",
        )
    spec = get_task(task)
    return spec.evaluate(model_dir, _steps(spec).eval_data(manifest_dir), split=split)


def gate_step(
    candidate: dict[str, Any],
    manifest_dir: str,
    store_uri: str,
    out_dir: str | None,
    policy: dict[str, Any],
    *,
    split: str = "val",
    model_dir: str | None = None,
) -> dict:
    """Decide candidate vs production on the same data; writes ``gate.json``/``gate.md``.

    When the manifest holds new data (:mod:`imgrec.mlops.new_data`) and ``model_dir`` (the
    candidate) is given, both models are also scored on the held-out new data and the gate is
    :func:`~imgrec.mlops.gate.decide_with_new_data`."""
    from imgrec.mlops.gate import GatePolicy, decide, decide_with_new_data
    from imgrec.mlops.new_data import HOLDOUT_SPLIT, has_holdout

    spec = get_task(manifest_task(manifest_dir))
    policy = dict(policy)
    if policy.get("metric", "auto") in ("auto", ""):
        policy["metric"] = spec.gate_metric
    policy.setdefault("per_class_metric", spec.per_class_metric)
    gate_policy = GatePolicy.from_dict(policy)  # checked before the production model is scored
    two_sets = model_dir is not None and has_holdout(manifest_dir)
    production = production_new = None
    with _production_model(store_uri) as (version, prod_dir):
        if prod_dir is not None:
            production = _evaluate_same_task(prod_dir, manifest_dir, split)
            if two_sets:
                production_new = _evaluate_same_task(prod_dir, manifest_dir, HOLDOUT_SPLIT)
    if two_sets:
        assert model_dir is not None
        candidate_new = _evaluate_same_task(model_dir, manifest_dir, HOLDOUT_SPLIT)
        decision = decide_with_new_data(
            candidate, production, candidate_new, production_new, gate_policy,
            production_version=version,
        )  # fmt: skip
    else:
        decision = decide(candidate, production, gate_policy, production_version=version)
    out = decision.to_dict()
    if production is not None:
        out["production_metrics"] = {k: production[k] for k in SCALAR_METRICS if k in production}
    if out_dir is not None:
        storage.write_text(storage.join(out_dir, "gate.json"), json.dumps(out, indent=1))
        storage.write_text(storage.join(out_dir, "gate.md"), decision.markdown())
    return out


def register_metadata(
    metrics: dict[str, Any], gate: dict[str, Any], dataset: dict[str, Any]
) -> dict[str, Any]:
    """What the store keeps beside a registered model."""
    return {
        "metrics": {
            **scalar_metrics(metrics),
            "per_class": metrics.get("per_class", {}),
            "classes": metrics.get("classes", []),
        },
        "dataset": {
            k: dataset[k] for k in ("fingerprint", "version", "source", "n_images") if k in dataset
        },
        "gate": {
            k: gate[k] for k in ("passed", "reasons", "metric", "production_version") if k in gate
        },
    }


def register_step(
    model_dir: str,
    store_uri: str,
    metadata: dict[str, Any],
    attachments: dict[str, bytes] | None = None,
) -> int:
    """Store ``model_dir`` as a new version (with ``attachments`` beside it, e.g. the drift
    monitor's reference) and make it production; returns its number."""
    from imgrec.model_store import ModelStore

    reason = "passed the gate" if metadata.get("gate", {}).get("passed") else "registered"
    store = ModelStore(store_uri)
    return store.register(
        model_dir, metadata=metadata, reason=reason, attachments=attachments
    ).version


def kfp_safe(value: Any) -> Any:
    """JSON-like data that KFP can pass between tasks: ``None`` dict entries are dropped,
    ``None`` list items become ``""`` (KFP's struct parameters reject nulls)."""
    if isinstance(value, dict):
        return {str(k): kfp_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return ["" if v is None else kfp_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalar metrics of an evaluate dict (for Kubeflow ``Metrics`` and summaries)."""
    return {
        k: (int(metrics[k]) if k == "n" else float(metrics[k]))
        for k in SCALAR_METRICS
        if metrics.get(k) is not None
    }


def copy_file(src: str, dst: str) -> None:
    """Copy one local file, creating the destination folder."""
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
