"""The fast batch-predict path gives the same numbers as the straightforward one: table-lookup
normalization equals ``normalize_uint8`` bit for bit, ONNX Runtime calls running side by side
on small batches equal one big batch, and ``predict`` on draft-decoded JPEGs equals decoding,
resizing, normalizing and inferring each image on its own. Also the pipeline's order, failures,
early stop and reused batch memory."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.special import softmax
from torchvision.transforms import v2 as T

sys.path.insert(0, str(Path(__file__).parent))

from eval_fixtures import write_tiny_model

from imgrec.data.images import load_image
from imgrec.data.pixels import (
    draft_size,
    normalize_batch,
    normalize_lookup,
    normalize_table,
)
from imgrec.data.transforms import normalize_uint8, resize_ops, to_tensor_ops
from imgrec.errors import CorruptImageError, ImgrecError
from imgrec.inference.runners import default_threads, make_runner, runs_in_parallel
from imgrec.models.card import Preprocessing
from imgrec.predictor import load_model
from imgrec.tasks.classify.batching import BufferPool, inferred_batches, stack
from imgrec.tasks.classify.predict import predict

CLASSES = ["red", "green", "blue"]


@pytest.fixture(autouse=True)
def _onnx_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("IMGREC_CACHE", str(tmp_path_factory.getbasetemp() / "imgrec-cache"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("pp") / "model", CLASSES, seed=3)


@pytest.mark.parametrize(
    "pre", [Preprocessing(), Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.25, 0.3, 0.1))]
)
def test_lookup_normalization_equals_normalize_uint8(pre):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (37, 23, 3), dtype=np.uint8)
    pixels[0, :3] = [[0, 0, 0], [255, 255, 255], [1, 128, 254]]  # the extremes are covered
    table = normalize_table(pre)
    assert table.shape == (3, 256) and table.dtype == np.float32
    got = normalize_lookup(pixels, table)
    want = normalize_uint8(torch.from_numpy(pixels).permute(2, 0, 1)[None].contiguous(), pre)[0]
    assert got.shape == (3, 37, 23) and got.dtype == np.float32
    assert np.array_equal(got, want.numpy())  # bit for bit, not approximately
    # ... and what eval_transform (training's validation, the servers) gives, bit for bit
    to_tensor = T.Compose(to_tensor_ops(pre))  # eval_transform after its resize
    assert np.array_equal(got, to_tensor(Image.fromarray(pixels)).numpy())
    batch = normalize_batch(np.ascontiguousarray(pixels.transpose(2, 0, 1))[None], pre)
    assert np.array_equal(batch[0], got)  # the servers' batched lookup
    with pytest.raises(ValueError, match="uint8"):
        normalize_lookup(pixels.astype(np.float32), table)
    with pytest.raises(ValueError, match="uint8"):
        normalize_lookup(pixels[:, :, :2], table)


def test_onnx_calls_side_by_side_equal_one_batch(model_dir):
    clf = load_model(str(model_dir))
    run = make_runner(clf, "onnx", parallel=True)
    assert runs_in_parallel(run)  # one intra-op thread: computes in the caller's thread
    assert runs_in_parallel(make_runner(clf, "onnx")) == (default_threads() == 1)
    assert not runs_in_parallel(make_runner(clf, "torch", parallel=True))
    x = torch.randn(13, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    whole = run(x)
    with ThreadPoolExecutor(max_workers=3) as pool:
        parts = list(pool.map(run, [x[i : i + 3] for i in range(0, 13, 3)]))
    assert torch.equal(torch.cat(parts), whole)  # batch size and threads change nothing


def test_torch_runner_leaves_the_classifier_module_alone(model_dir):
    clf = load_model(str(model_dir))
    before = {k: (v.stride(), v.clone()) for k, v in clf.module.state_dict().items()}
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    logits = make_runner(clf, "torch")(x)
    assert logits.shape == (2, len(CLASSES))
    for name, tensor in clf.module.state_dict().items():  # not converted to channels-last
        assert tensor.stride() == before[name][0] and torch.equal(tensor, before[name][1])


def _write_jpegs(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(5)
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        color = np.array([(220, 30, 30), (30, 200, 40), (30, 40, 220)][i % 3], dtype=np.float64)
        pixels = np.clip(color + rng.normal(0, 50, (150, 200, 3)), 0, 255).astype(np.uint8)
        path = folder / f"img_{i:02d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


@pytest.mark.parametrize(("runtime", "batch_size"), [("onnx", None), ("onnx", 3), ("torch", 4)])
def test_predict_equals_one_image_at_a_time(model_dir, tmp_path, runtime, batch_size):
    """Draft JPEG decode, resize-crop, ``normalize_uint8`` and the model, image by image."""
    paths = _write_jpegs(tmp_path / "jpegs", 11)
    (tmp_path / "jpegs" / "img_05b.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    clf = load_model(str(model_dir))
    records = list(
        predict([tmp_path / "jpegs"], model=clf, top_k=3, runtime=runtime, batch_size=batch_size)
    )
    sources = [Path(r["source"]).name for r in records]
    assert sources == sorted(p.name for p in (tmp_path / "jpegs").iterdir())
    assert records[6]["error"]["code"] == CorruptImageError.code  # in place, others go on

    pre = clf.card.preprocessing
    size = draft_size(clf.card.preprocessing)
    geometry = resize_ops(pre)[0]
    run = make_runner(clf, runtime)
    for path, record in zip(paths, [r for r in records if "error" not in r], strict=True):
        image = load_image(path, draft=size)
        assert image.size[0] < 200  # the draft decode did reduce it
        pixels = torch.from_numpy(np.array(geometry(image)))  # (H, W, 3) uint8
        x = normalize_uint8(pixels.permute(2, 0, 1)[None].contiguous(), pre)
        # the scores: float64 softmax rounded to float32 (imgrec.inference.scores), against
        # scipy's softmax of the same logits; the order is the logits' (ties by class index)
        logits = run(x).float().numpy()[0].astype(np.float64)
        want = softmax(logits)
        ids = np.argsort(-logits, kind="stable")[:3]
        assert [p["label"] for p in record["predictions"]] == [CLASSES[i] for i in ids]
        got = [p["score"] for p in record["predictions"]]
        if runtime == "onnx":  # the same input floats and batch-independent logits
            assert got == pytest.approx(want[ids].tolist(), rel=2e-7, abs=1e-30)
        else:  # PyTorch's convolutions may round differently per batch size
            assert got == pytest.approx(want[ids].tolist(), abs=1e-6)


def _toy_load(i: int) -> tuple[torch.Tensor, int]:
    if i % 7 == 3:
        raise CorruptImageError(f"bad {i}")
    return torch.full((2, 3, 3), float(i)), i * 10


@pytest.mark.parametrize("in_pool", [True, False])
def test_inferred_batches_order_failures_and_threads(in_pool):
    seen_threads: set[str] = set()

    def infer(x: torch.Tensor) -> list[float]:
        seen_threads.add(threading.current_thread().name)
        return x[:, 0, 0, 0].tolist()  # a copy: the batch memory is reused

    batches = list(
        inferred_batches(
            range(30), _toy_load, infer, batch_size=4, workers=3, infer_in_pool=in_pool
        )
    )
    ok = [(i, s, extra) for b in batches for i, s, extra in b.ok]
    failed = [(i, s) for b in batches for i, s, _ in b.failed]
    assert [s for _, s, _ in ok] == [i for i in range(30) if i % 7 != 3]
    assert [extra for _, s, extra in ok] == [s * 10 for _, s, _ in ok]
    assert failed == [(i, i) for i in range(30) if i % 7 == 3]
    assert all(len(b.ok) <= 4 for b in batches)
    outputs = [v for b in batches if b.output is not None for v in b.output]
    assert outputs == [float(s) for _, s, _ in ok]  # each batch saw its own images
    if in_pool:
        assert seen_threads and all(n.startswith("imgrec-decode") for n in seen_threads)
    else:
        assert seen_threads == {threading.current_thread().name}


def test_inferred_batches_only_failures_and_early_stop():
    def bad(i: int) -> tuple[torch.Tensor, None]:
        raise CorruptImageError(f"bad {i}")

    [batch] = list(inferred_batches(range(3), bad, len, batch_size=4))
    assert batch.output is None and [i for i, _, _ in batch.failed] == [0, 1, 2]
    assert all(isinstance(e, ImgrecError) for _, _, e in batch.failed)

    started: list[int] = []

    def slow(i: int) -> tuple[torch.Tensor, None]:
        started.append(i)
        return torch.zeros(1), None

    gen = inferred_batches(range(10_000), slow, len, batch_size=2, workers=2)
    first = next(gen)
    gen.close()  # stops the pool: the rest of the sources are never decoded
    assert first.output == 2 and len(started) < 100
    with pytest.raises(ValueError, match="batch_size"):
        next(inferred_batches(range(3), slow, len, batch_size=0))


def test_buffer_pool_reuses_memory_and_keeps_values():
    pool = BufferPool()
    a = [torch.full((3, 4), float(i)) for i in range(5)]
    batch, release = pool.stack(a)
    assert torch.equal(batch, torch.stack(a))
    pointer = batch.data_ptr()
    release()
    b = [torch.full((3, 4), float(-i)) for i in range(5)]
    again, release_again = pool.stack(b)
    assert again.data_ptr() == pointer and torch.equal(again, torch.stack(b))
    other, _ = pool.stack(b[:2])  # another shape: its own memory; the pooled one is in use
    assert other.data_ptr() != pointer and torch.equal(other, torch.stack(b[:2]))
    release_again()
    halves = [t.to(torch.bfloat16) for t in b]  # no numpy dtype: torch stacks them
    stacked, release_halves = pool.stack(halves)
    assert stacked.dtype == torch.bfloat16 and torch.equal(stacked, torch.stack(halves))
    release_halves()
    assert torch.equal(stack(halves), torch.stack(halves))
