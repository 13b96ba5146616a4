"""Export and numerics: ONNX vs PyTorch on real images, the server's preprocessing vs
``eval_transform``, the batcher keeping the event loop free."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from imgrec.data.images import decode_image
from imgrec.data.pixels import draft_size, normalize_batch
from imgrec.data.transforms import eval_transform
from imgrec.inference.onnx import ONNX_ATOL as ONNX_TOLERANCE
from imgrec.inference.onnx import cpu_session, onnx_difference
from imgrec.models.card import Preprocessing
from imgrec.predictor import load_model
from imgrec.serving.batcher import DynamicBatcher
from imgrec.serving.export import EXPORT_FORMATS, export_model
from imgrec.serving.inputs import prepare_image


def _jpeg(arr: np.ndarray, size: tuple[int, int] | None = None) -> bytes:
    img = Image.fromarray(arr).convert("RGB")
    if size:
        img = img.resize(size, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


REAL = {"chelsea": skdata.chelsea(), "astronaut": skdata.astronaut(), "coffee": skdata.coffee()}


@pytest.fixture(scope="module")
def lite0():  # type: ignore[no-untyped-def]
    return load_model("efficientnet_lite0")


def test_onnx_matches_pytorch_on_real_images(lite0, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = export_model("efficientnet_lite0", "onnx", tmp_path / "lite0.onnx")
    assert result.max_abs_diff is not None and result.max_abs_diff <= ONNX_TOLERANCE
    x = torch.stack([lite0.preprocess(decode_image(_jpeg(a))) for a in REAL.values()]).numpy()
    diff, _ = onnx_difference(lite0, cpu_session(result.path, 1), x)  # (3, 3, 224, 224) photos
    assert diff <= ONNX_TOLERANCE, diff


@pytest.mark.parametrize(
    "pre",
    [
        Preprocessing(input_size=224, resize_size=256, interpolation="bicubic"),
        Preprocessing(
            input_size=32,
            resize_size=36,
            interpolation="bilinear",
            mean=(0.1, 0.2, 0.3),
            std=(0.3, 0.2, 0.1),
        ),
        Preprocessing(input_size=64, resize_size=64, crop="none"),
    ],
)
def test_server_preprocessing_equals_eval_transform(pre: Preprocessing) -> None:
    for name, arr in REAL.items():
        jpeg = _jpeg(arr, (1600, 1200))
        item = prepare_image(jpeg, pre)
        assert item.pixels is not None and item.pixels.dtype == np.uint8
        fast = normalize_batch(item.pixels[None], pre)[0]
        # exact: same decode (with draft), same eval_transform
        reference = eval_transform(pre)(decode_image(jpeg, draft=draft_size(pre))).numpy()
        assert np.array_equal(fast, reference), name
        # and close to the full-resolution decode the draft shortcut skips
        full = eval_transform(pre)(decode_image(jpeg)).numpy()
        assert np.abs(fast - full).mean() < 0.05, name


def test_draft_decode_is_smaller_for_big_jpegs() -> None:
    pre = Preprocessing(input_size=224, resize_size=256)
    jpeg = _jpeg(REAL["chelsea"], (4000, 3000))  # 12 MP
    img = decode_image(jpeg, draft=draft_size(pre))
    assert 256 <= min(img.size) <= 2 * 375 and img.size[0] < 4000


def test_export_formats_registry(tmp_path: Path) -> None:
    assert {"onnx", "mar", "safetensors"} <= set(EXPORT_FORMATS.names())
    with pytest.raises(Exception, match="did you mean 'onnx'"):
        EXPORT_FORMATS.get("onx")
    out = export_model("efficientnet_lite0", "safetensors", tmp_path / "model")
    again = load_model(out.path)
    assert again.classes[281] == "tabby"


def test_batcher_batches_and_never_blocks_the_loop() -> None:
    calls: list[int] = []

    def slow_model(_: object, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(x))
        time.sleep(0.2)  # a blocking model call
        return x.sum(axis=(1, 2, 3)), x[:, 0, 0, 0]

    async def scenario() -> tuple[list, int]:
        batcher = DynamicBatcher(slow_model, max_batch_size=8, max_wait_ms=20)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        xs = [np.full((3, 2, 2), i, dtype=np.float32) for i in range(8)]
        results = await asyncio.gather(*(batcher.submit("rt", [x]) for x in xs))
        tick_task.cancel()
        batcher.stop()
        return results, ticks

    results, ticks = asyncio.run(scenario())
    assert [r[0][0] for r in results] == [12.0 * i for i in range(8)]
    assert sum(calls) == 8 and max(calls) > 1  # concurrent requests shared model calls
    assert ticks >= 10  # the loop kept running during the 0.2 s blocking calls


def test_batcher_workers_run_batches_concurrently() -> None:
    running = 0
    overlap = 0
    lock = threading.Lock()

    def slow_model(_: object, x: np.ndarray) -> np.ndarray:
        nonlocal running, overlap
        with lock:
            running += 1
            overlap = max(overlap, running)
        time.sleep(0.15)
        with lock:
            running -= 1
        return x.reshape(len(x), -1).sum(axis=1)

    async def scenario(workers: int) -> tuple[list[Any], float]:
        batcher = DynamicBatcher(slow_model, max_batch_size=2, max_wait_ms=1, workers=workers)
        started = time.perf_counter()
        xs = [np.full((1, 2, 2), i, dtype=np.float32) for i in range(8)]
        results = await asyncio.gather(*(batcher.submit("rt", [x]) for x in xs))
        elapsed = time.perf_counter() - started
        assert batcher.stats.images == 8 and batcher.stats.max_batch <= 2
        batcher.stop()
        return results, elapsed

    results, _ = asyncio.run(scenario(workers=2))
    assert [float(r[0]) for r in results] == [4.0 * i for i in range(8)]  # each its own row
    assert overlap == 2  # two batches were in the model at once
    overlap = 0
    asyncio.run(scenario(workers=1))
    assert overlap == 1
    with pytest.raises(ValueError, match="workers"):
        DynamicBatcher(slow_model, workers=0)


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [("decode_threads", 0, "--decode-threads"), ("max_batch_size", -1, "--max-batch"),
     ("model_workers", 1.5, "--model-workers"), ("timeout_s", 0.0, "--timeout")],
)  # fmt: skip
def test_serving_options_refuse_bad_counts_naming_the_flag(
    field: str, value: object, flag: str
) -> None:
    from imgrec.errors import ConfigError
    from imgrec.serving.model import ServingOptions

    with pytest.raises(ConfigError) as info:
        ServingOptions(**{field: value})
    assert repr(value) in info.value.message and flag in (info.value.hint or "")
    assert ServingOptions(model_workers=None, threads=None).decode_threads == 2  # defaults ok


@pytest.mark.parametrize(
    ("options", "batch"),
    [({}, 1), ({"precision": "int8"}, 4), ({"precision": "bf16"}, 4),
     ({"backend": "torch"}, 4), ({"max_batch_size": 3}, 3)],
)  # fmt: skip
def test_the_batch_limit_is_1_for_onnx_fp32_and_4_where_batching_pays(
    options: dict[str, object], batch: int
) -> None:
    from imgrec.serving.model import ImgrecModel, ServingOptions

    model = ImgrecModel("imgrec", "efficientnet_lite0", ServingOptions(**options))  # type: ignore[arg-type]
    assert model._max_batch == batch
