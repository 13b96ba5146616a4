"""The model card and the model directory every command and server loads.

A model directory holds ``model.json`` (the :class:`ModelCard`) and ``weights.safetensors``
(the state dict of the full network). Weights are data that carry their preprocessing: the card
records the architecture, class names and the exact eval preprocessing, so inference never
depends on duplicated constants::

    card = ModelCard(architecture="small_resnet", classes=["0", "1"],
                     preprocessing=Preprocessing(input_size=28, resize_size=28))
    save_model_dir(module, card, "runs/a/model")          # atomic; local or s3://
    card, state = read_model_dir("runs/a/model")           # validated
    module = build_from_card(card, state)          # eval mode (imgrec.models.architectures)
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgrec.errors import ModelError, NotFoundError, StorageError

if TYPE_CHECKING:  # reading a card needs no torch (imgrec predict / serve on a cached export)
    import torch
    from torch import nn

FORMAT = "imgrec.model/v1"
CARD_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_MODES = ("center", "none")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")


def _imgrec_version() -> str:
    from imgrec import __version__

    return __version__


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB image becomes the network's input tensor (see ``eval_transform``).

    ``resize_size``: the shorter side is resized to this; then ``crop="center"`` takes the
    central ``input_size`` square. ``crop="none"`` resizes the whole image to
    ``input_size`` x ``input_size`` (no crop, aspect not kept). ``mean``/``std`` are on the
    0-1 scale. ``background`` is the RGB colour alpha is composited on when decoding.
    """

    input_size: int = 224
    resize_size: int = 256
    crop: str = "center"
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    background: tuple[int, int, int] = (255, 255, 255)

    def __post_init__(self) -> None:
        problems = []
        if not (isinstance(self.input_size, int) and 8 <= self.input_size <= 4096):
            problems.append(f"input_size={self.input_size!r} (an int 8..4096)")
        if not (isinstance(self.resize_size, int) and self.resize_size >= self.input_size):
            problems.append(f"resize_size={self.resize_size!r} (an int >= input_size)")
        if self.crop not in CROP_MODES:
            problems.append(f"crop={self.crop!r} (one of {', '.join(CROP_MODES)})")
        if self.interpolation not in INTERPOLATIONS:
            problems.append(
                f"interpolation={self.interpolation!r} (one of {', '.join(INTERPOLATIONS)})"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            problems.append(f"mean={self.mean!r}/std={self.std!r} (3 values each, std > 0)")
        if len(self.background) != 3:
            problems.append(f"background={self.background!r} (3 values 0-255)")
        if problems:
            raise ModelError(
                "invalid preprocessing: " + "; ".join(problems),
                hint="fix the 'preprocessing' block of model.json",
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        """Build from the ``preprocessing`` block of ``model.json`` (unknown keys rejected)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(
                f"unknown preprocessing keys {unknown}", hint=f"known: {', '.join(sorted(known))}"
            )
        kw: dict[str, Any] = dict(data)
        for key in ("mean", "std", "background"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class ModelCard:
    """Everything needed to rebuild, preprocess for and describe a trained model."""

    architecture: str
    classes: list[str]
    preprocessing: Preprocessing
    num_classes: int = 0  # 0 -> len(classes)
    task: str = "classify"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=dict)  # provenance, e.g. pretrained tag
    created: str = field(default_factory=_now)
    imgrec_version: str = field(default_factory=_imgrec_version)
    format: str = FORMAT

    def __post_init__(self) -> None:
        if not self.num_classes:
            self.num_classes = len(self.classes)
        if self.num_classes != len(self.classes):
            raise ModelError(
                f"class-count mismatch: num_classes={self.num_classes} but "
                f"{len(self.classes)} class names",
                hint="num_classes must equal the length of 'classes' in model.json",
            )
        if self.num_classes < 1:
            raise ModelError("a model card needs at least one class", hint="set 'classes'")

    def to_dict(self) -> dict[str, Any]:
        """The ``model.json`` content (format first)."""
        out: dict[str, Any] = {"format": self.format}
        for f in fields(self):
            if f.name != "format":
                value = getattr(self, f.name)
                out[f.name] = value.to_dict() if isinstance(value, Preprocessing) else value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "model.json") -> ModelCard:
        """Validate and build from a parsed ``model.json``; problems raise ``ModelError``."""
        if not isinstance(data, dict):
            raise ModelError(f"{source} is not a JSON object", hint="re-save the model")
        fmt = data.get("format")
        if fmt != FORMAT:
            raise ModelError(
                f"{source}: unknown model format {fmt!r}",
                hint=f"this imgrec reads {FORMAT!r}; upgrade imgrec or re-export the model",
            )
        missing = [k for k in ("architecture", "classes", "preprocessing") if k not in data]
        if missing:
            raise ModelError(f"{source} lacks {missing}", hint="re-save the model")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        if not isinstance(kw["classes"], list) or not all(
            isinstance(c, str) for c in kw["classes"]
        ):
            raise ModelError(f"{source}: 'classes' must be a list of strings", hint="fix it")
        kw["preprocessing"] = Preprocessing.from_dict(dict(data["preprocessing"]))
        return cls(**kw)


# --- writing ---------------------------------------------------------------------------
def _state_for_saving(module: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses shared/non-contiguous storage; clone to independent tensors.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def save_model_dir(module: nn.Module, card: ModelCard, path: str | os.PathLike[str]) -> str:
    """Write ``model.json`` + ``weights.safetensors`` for ``module`` atomically; returns ``path``.

    Local: files go to a temp dir beside the target, are fsynced, and the dir is renamed into
    place (an existing model dir is replaced only after the new one is complete). ``s3://``:
    the weights are written first and ``model.json`` last, so a reader never sees a card
    pointing at missing weights.

    Example: ``save_model_dir(net, card, "runs/exp1/model")``
    """
    from safetensors.torch import save as st_save

    state = _state_for_saving(module)
    bad = nonfinite_keys(state)
    if bad:
        raise ModelError(
            f"refusing to save a model with NaN/inf weights in {bad[:5]}",
            hint="training diverged; lower the learning rate",
        )
    blob = st_save(state, metadata={"format": FORMAT})
    card_json = card.to_json().encode()
    from imgrec import storage

    if storage.is_s3(str(path)):
        storage.write_bytes(storage.join(str(path), WEIGHTS_FILE), blob)
        storage.write_bytes(storage.join(str(path), CARD_FILE), card_json)
        return str(path)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        for name, data in ((WEIGHTS_FILE, blob), (CARD_FILE, card_json)):
            (tmp / name).write_bytes(data)
            storage.fsync_file(tmp / name)
        storage.fsync_dir(tmp)
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
        os.rename(tmp, target)
        storage.fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(target)


# --- reading ---------------------------------------------------------------------------
def nonfinite_keys(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating-point tensors holding NaN or inf."""
    return [
        k
        for k, v in state.items()
        if v.is_floating_point() and v.numel() and not bool(v.isfinite().all())
    ]


def _read(path: str, name: str) -> bytes:
    from imgrec import storage

    uri = storage.join(path, name)
    try:
        return storage.read_bytes(uri)
    except NotFoundError:
        raise ModelError(
            f"model directory {path!r} has no {name}",
            hint="a model dir holds model.json and weights.safetensors (from `imgrec train`)",
        ) from None
    except StorageError as exc:
        raise ModelError(f"cannot read {uri}: {exc.message}", hint=exc.hint) from exc


def parse_safetensors(blob: bytes, *, source: str) -> dict[str, torch.Tensor]:
    """Decode safetensors bytes; truncated/corrupt data or NaN/inf weights raise ModelError."""
    from safetensors.torch import load as st_load

    try:
        state = st_load(blob)
    except Exception as exc:  # safetensors raises SafetensorError / ValueError variants
        raise ModelError(
            f"{source} is not a valid safetensors file ({exc})",
            hint="the file is truncated or corrupt; re-save or re-download it",
        ) from None
    bad = nonfinite_keys(state)
    if bad:
        raise ModelError(
            f"{source} holds NaN/inf weights in {len(bad)} tensors, e.g. {bad[:3]}",
            hint="the model diverged or the file is damaged; use another checkpoint",
        )
    return state


def read_card(path: str | os.PathLike[str]) -> ModelCard:
    """Read and validate only ``model.json`` of a model directory (local or ``s3://``)."""
    raw = _read(str(path), CARD_FILE)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(
            f"{path}/{CARD_FILE} is not valid JSON ({exc})", hint="re-save the model"
        ) from None
    return ModelCard.from_dict(data, source=f"{path}/{CARD_FILE}")


def read_model_dir(path: str | os.PathLike[str]) -> tuple[ModelCard, dict[str, torch.Tensor]]:
    """Read and validate a model directory; returns ``(card, state_dict)``.

    Missing files, bad JSON, an unknown format version, class-count mismatch, truncated
    weights and NaN weights all raise ``ModelError`` (code ``invalid_model``).

    Example: ``card, state = read_model_dir("s3://models/cats/v3")``
    """
    card = read_card(path)
    state = parse_safetensors(_read(str(path), WEIGHTS_FILE), source=f"{path}/{WEIGHTS_FILE}")
    return card, state
