"""Typed training configuration: one source of defaults, validated once, saved with the run.

Values come from three layers, later ones winning: the defaults below, a YAML file
(``--config FILE.yaml``), then overrides (``--set key=value`` or keyword arguments)::

    cfg = load_config("train.yaml", overrides={"epochs": 5}, sets=["optimizer=sgd"])
    cfg.save(run_dir / "config.yaml")

``"auto"`` (stored as ``None``) means "let the recipe choose from the data"; see
``imgrec.tasks.classify.recipe``. Unknown keys are refused with the closest valid names.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from imgrec.errors import ConfigError

AUTO = "auto"


def _doc(text: str, choices: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"doc": text, "choices": choices}


@dataclass
class TrainConfig:
    """Every knob of a training run. ``None`` means ``auto`` (decided by the recipe)."""

    # --- model ----------------------------------------------------------------------
    model: str = field(
        default=AUTO,
        metadata=_doc("architecture name (`imgrec architectures`), or auto: chosen from the data"),
    )
    arch_kwargs: dict[str, Any] = field(
        default_factory=dict, metadata=_doc("extra keyword arguments for the architecture builder")
    )
    pretrained: bool | None = field(
        default=None, metadata=_doc("start from the architecture's pretrained weights; auto=recipe")
    )
    weights: str | None = field(
        default=None, metadata=_doc("initial weights file (safetensors or a plain state dict)")
    )
    freeze: str | None = field(
        default=None,
        metadata=_doc("none | backbone | first:N (first N blocks frozen); auto=recipe"),
    )
    # --- schedule -------------------------------------------------------------------
    epochs: int | None = field(
        default=None,
        metadata=_doc("number of epochs (with time_budget: the most it may plan); auto=recipe"),
    )
    time_budget: float | None = field(
        default=None,
        metadata=_doc(
            "seconds for the whole run (data loading to final evaluation): the step speed is "
            "measured and the schedule planned to fit; auto=recipe (none when epochs is set)"
        ),
    )
    min_epochs: int | None = field(
        default=None,
        metadata=_doc(
            "with time_budget: the fewest epochs the plan may use, even past the budget (a "
            "slow or busy machine still gets a usable model; it says so); auto=recipe"
        ),
    )
    img_size: int | None = field(
        default=None, metadata=_doc("network input size in pixels; auto=native size or 224")
    )
    batch_size: int | None = field(default=None, metadata=_doc("training batch size; auto=recipe"))
    optimizer: str = field(default="adamw", metadata=_doc("optimizer", ("adamw", "sgd")))
    lr: float | None = field(default=None, metadata=_doc("peak learning rate; auto=recipe"))
    weight_decay: float = field(default=0.05, metadata=_doc("decoupled (AdamW) or L2 (SGD) decay"))
    momentum: float = field(default=0.9, metadata=_doc("SGD momentum"))
    scheduler: str | None = field(
        default=None,
        metadata=_doc("learning-rate schedule; auto=recipe", ("cosine", "onecycle", "constant")),
    )
    warmup_epochs: float = field(
        default=0.5, metadata=_doc("linear warm-up length in epochs (cosine/constant)")
    )
    label_smoothing: float = field(default=0.1, metadata=_doc("cross-entropy label smoothing"))
    grad_clip: float | None = field(default=None, metadata=_doc("max gradient norm; none=off"))
    # --- augmentation and imbalance -------------------------------------------------
    augment: str | None = field(
        default=None,
        metadata=_doc(
            "augmentation preset; auto=recipe", ("none", "light", "elastic", "strong", "camera")
        ),
    )
    mixup_alpha: float = field(default=0.0, metadata=_doc("MixUp Beta alpha; 0=off"))
    cutmix_alpha: float = field(default=0.0, metadata=_doc("CutMix Beta alpha; 0=off"))
    class_weights: str = field(
        default="none",
        metadata=_doc("loss weights per class", ("none", "balanced")),
    )
    balanced_sampler: bool = field(
        default=False, metadata=_doc("sample training images inversely to class frequency")
    )
    # --- stopping and reproducibility -----------------------------------------------
    early_stopping_patience: int = field(
        default=0, metadata=_doc("stop after N epochs without val-accuracy gain; 0=off")
    )
    early_stopping_min_delta: float = field(
        default=0.0, metadata=_doc("smallest val-accuracy gain counted as an improvement")
    )
    seed: int = field(default=0, metadata=_doc("seed for splits, initialisation, shuffling"))
    deterministic: bool = field(
        default=True, metadata=_doc("deterministic kernels (cuDNN); same seed -> same weights")
    )
    # --- hardware -------------------------------------------------------------------
    device: str = field(default=AUTO, metadata=_doc("device", ("auto", "cpu", "cuda")))
    amp: bool | None = field(
        default=None,
        metadata=_doc(
            "mixed precision (CUDA: float16; CPU: bfloat16, needs AVX512-BF16 or AMX); "
            "auto=on for CUDA and for the small-image recipe on a CPU with native bf16"
        ),
    )
    channels_last: bool | None = field(
        default=None, metadata=_doc("channels-last memory format; auto=on for CUDA")
    )
    threads: int | None = field(
        default=None, metadata=_doc("CPU threads for torch; auto=the cores not already busy")
    )
    num_workers: int | None = field(
        default=None, metadata=_doc("DataLoader workers for the file path; auto=min(4, cpus-1)")
    )
    # --- data -----------------------------------------------------------------------
    val_fraction: float = field(
        default=0.2, metadata=_doc("share held out for val when the data has no val split")
    )
    max_bad_fraction: float = field(
        default=0.2, metadata=_doc("refuse the dataset when more than this share is unreadable")
    )
    cache_images: bool | None = field(
        default=None,
        metadata=_doc("decode the images once into memory; auto=when they fit in 2 GiB"),
    )
    feature_cache: bool | None = field(
        default=None,
        metadata=_doc("with a frozen backbone: compute features once, train the head; auto=on"),
    )
    shard_cache_mb: float = field(
        default=0,
        metadata=_doc("local disk (MB) for shards streamed from s3:// (LRU); 0=stream each epoch"),
    )
    shuffle_buffer: int = field(
        default=1000, metadata=_doc("samples per worker in the shuffle buffer of sharded data")
    )
    # --- outputs --------------------------------------------------------------------
    report: bool = field(
        default=True,
        metadata=_doc("write figures/ and report.html at the end (metrics.json always)"),
    )

    # ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict (None written as ``auto``-free ``null``), ready for YAML/JSON."""
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the config as YAML (used for ``RUN_DIR/config.yaml``)."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with ``changes`` applied (same rules as overrides)."""
        return from_dict({**self.to_dict(), **changes})

    @staticmethod
    def help() -> dict[str, str]:
        """``{key: "doc (choices)"}`` for every field, for ``--help`` texts and docs."""
        out = {}
        for f in dataclasses.fields(TrainConfig):
            choices = f.metadata.get("choices", ())
            extra = f" [{'|'.join(choices)}]" if choices else ""
            out[f.name] = f"{f.metadata.get('doc', '')}{extra} (default: {f.default!r})"
        return out


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def _allowed_types(name: str) -> tuple[list[type], bool]:
    hint = _HINTS[name]
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        return [typing.get_origin(k) or k for k in kinds], type(None) in args
    return [typing.get_origin(hint) or hint], False


def _coerce(name: str, value: Any) -> Any:
    """Convert ``value`` (possibly a string from ``--set``) to the field's type, or refuse."""
    kinds, optional = _allowed_types(name)
    if isinstance(value, str) and optional:
        word = value.strip().lower()
        # "none" is a real choice for string fields (augment=none), "no value" for the others.
        if word in (AUTO, "null", "") or (word == "none" and str not in kinds):
            return None
    if value is None and optional:
        return None
    for kind in kinds:
        converted = _convert(value, kind)
        if converted is not _FAIL:
            return converted
    expected = " or ".join(k.__name__ for k in kinds) + (" or auto" if optional else "")
    raise ConfigError(
        f"config key {name!r}: {value!r} is not a valid {expected}",
        hint=f"{name}: {_FIELDS[name].metadata.get('doc', '')}",
    )


_FAIL = object()
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _convert(value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        return _FAIL
    if kind is int:
        if isinstance(value, bool):
            return _FAIL
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                return _FAIL
        return _FAIL
    if kind is float:
        if isinstance(value, bool):
            return _FAIL
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                return _FAIL
        return _FAIL
    if kind is dict:
        if isinstance(value, dict):
            return dict(value)
        if isinstance(value, str):
            loaded = yaml.safe_load(value)
            return loaded if isinstance(loaded, dict) else _FAIL
        return _FAIL
    if kind is str:
        return value if isinstance(value, str) else _FAIL
    return _FAIL


def _check_key(name: str) -> None:
    if name not in _FIELDS:
        close = difflib.get_close_matches(name, list(_FIELDS), n=3, cutoff=0.5)
        did_you_mean = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"unknown config key {name!r}{did_you_mean}",
            hint="valid keys: " + ", ".join(_FIELDS),
        )


def _validate(cfg: TrainConfig) -> None:
    for name, f in _FIELDS.items():
        choices = f.metadata.get("choices", ())
        value = getattr(cfg, name)
        if choices and value is not None and value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.4)
            did_you_mean = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"config key {name!r}: {value!r} is not one of {'|'.join(choices)}{did_you_mean}",
                hint=f"{name}: {f.metadata.get('doc', '')}",
            )
    positive = ("epochs", "time_budget", "min_epochs", "img_size", "batch_size", "lr", "threads")
    for name in positive:
        value = getattr(cfg, name)
        if value is not None and value <= 0:
            raise ConfigError(f"config key {name!r} must be > 0, got {value!r}")
    fractions = ("val_fraction", "max_bad_fraction", "label_smoothing")
    for name in fractions:
        value = getattr(cfg, name)
        if not 0.0 <= value < 1.0 and not (name == "max_bad_fraction" and value == 1.0):
            raise ConfigError(f"config key {name!r} must be in [0, 1), got {value!r}")
    for name in ("weight_decay", "momentum", "warmup_epochs", "mixup_alpha", "cutmix_alpha"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"config key {name!r} must be >= 0, got {getattr(cfg, name)!r}")
    if cfg.freeze is not None and not _valid_freeze(cfg.freeze):
        raise ConfigError(
            f"config key 'freeze': {cfg.freeze!r} is not valid",
            hint="use none, backbone, or first:N (e.g. first:3)",
        )


def _valid_freeze(value: str) -> bool:
    if value in ("none", "backbone"):
        return True
    head, _, count = value.partition(":")
    return head == "first" and count.isdigit()


def from_dict(values: dict[str, Any]) -> TrainConfig:
    """Build a validated ``TrainConfig``; unknown keys raise ``ConfigError`` with suggestions."""
    kwargs = {}
    for name, value in values.items():
        _check_key(name)
        kwargs[name] = _coerce(name, value)
    cfg = TrainConfig(**kwargs)
    _validate(cfg)
    return cfg


def parse_key_values(
    items: list[str] | tuple[str, ...],
    *,
    flag: str = "--set",
    example: str = "lr=0.01",
    typed: bool = True,
) -> dict[str, Any]:
    """The one ``KEY=VALUE`` parser: ``["epochs=5", "lr=0.01"]`` -> ``{"epochs": 5, "lr": 0.01}``.

    ``typed``: values are read as YAML scalars (numbers, booleans, strings; empty -> ``""``),
    keys have ``-`` turned into ``_``; otherwise both stay stripped strings (pipeline
    parameters, converted by the pipeline's own types). ``flag`` and ``example`` go into the
    error: ``ConfigError("--set 'lr' is not KEY=VALUE", hint="e.g. --set lr=0.01")``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item!r} is not KEY=VALUE", hint=f"e.g. {flag} {example}")
        if typed:
            out[key.strip().replace("-", "_")] = yaml.safe_load(raw) if raw.strip() else ""
        else:
            out[key.strip()] = raw.strip()
    return out


def parse_sets(sets: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Parse ``["epochs=5", "lr=0.01"]`` into a dict of known ``TrainConfig`` keys."""
    out = parse_key_values(sets, example="epochs=5")
    for key in out:
        _check_key(key)
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict (the file must hold a mapping)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist", hint="check the --config path")
    try:
        loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of key: value")
    return loaded


def load_config(
    path: str | Path | TrainConfig | dict[str, Any] | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    sets: list[str] | tuple[str, ...] = (),
) -> TrainConfig:
    """Defaults, then the YAML file (or a dict / TrainConfig), then ``overrides``, then ``sets``.

    ``overrides`` whose value is ``None`` are ignored (an unset CLI flag leaves the file's value).
    """
    values: dict[str, Any] = {}
    if isinstance(path, TrainConfig):
        values = path.to_dict()
    elif isinstance(path, dict):
        values = dict(path)
    elif path is not None:
        values = read_yaml(path)
    for key, value in (overrides or {}).items():
        key = key.replace("-", "_")
        _check_key(key)
        if value is not None:
            values[key] = value
    values.update(parse_sets(sets))
    return from_dict(values)
