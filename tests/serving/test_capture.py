"""Image capture: content-addressed, sampled, bounded, whole files only (local and S3)."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest
from PIL import Image

from imgrec.data.captures import capture_key, captured_images, fingerprint, image_suffix
from imgrec.errors import ConfigError
from imgrec.serving.capture import ImageCapture, sampled


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8), value).save(buf, format="PNG")
    return buf.getvalue()


def test_images_are_stored_once_by_fingerprint(tmp_path: Path) -> None:
    cap = ImageCapture(str(tmp_path / "cap"), flush_interval_s=0.05)
    a, b = _png(10), _png(200)
    assert cap.offer(a) and cap.offer(b)
    assert not cap.offer(a)  # already queued: not a second copy
    cap.close()
    stored = captured_images(str(tmp_path / "cap"))
    assert set(stored) == {fingerprint(a), fingerprint(b)}
    assert Path(stored[fingerprint(a)]).read_bytes() == a
    assert stored[fingerprint(a)].endswith(".png")
    # a new server process (empty memory) finds the file and does not rewrite it
    again = ImageCapture(str(tmp_path / "cap"), flush_interval_s=0.05)
    again.offer(a)
    again.close()
    assert again.skipped_existing == 1 and again.written == 0


def test_sample_is_decided_by_the_fingerprint() -> None:
    fps = [fingerprint(_png(v)) for v in range(256)]
    kept = [fp for fp in fps if sampled(fp, 0.25)]
    assert 40 <= len(kept) <= 90  # about a quarter of 256
    assert kept == [fp for fp in fps if sampled(fp, 0.25)]  # the same images every time
    assert all(sampled(fp, 1.0) for fp in fps)


def test_suffix_and_key() -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (4, 4)).save(jpeg, format="JPEG")
    assert image_suffix(jpeg.getvalue()) == ".jpg" and image_suffix(b"????") == ".img"
    fp = "sha256:0123456789abcdef"
    assert capture_key(fp, _png(1)) == "01/0123456789abcdef.png"


@pytest.mark.parametrize("rate", [0.0, -1.0, 1.5])
def test_bad_rate_is_refused(tmp_path: Path, rate: float) -> None:
    with pytest.raises(ConfigError, match="capture rate"):
        ImageCapture(str(tmp_path), rate=rate)


class _StuckStore(ImageCapture):
    """A store that does not answer until released: the queue must fill and drop."""

    release = threading.Event()

    def write_batch(self, batch: list) -> None:  # type: ignore[type-arg]
        self.release.wait(10)
        super().write_batch(batch)


def test_a_slow_store_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    import time

    cap = _StuckStore(str(tmp_path / "cap"), max_queue=4, flush_interval_s=0.01)
    images = [_png(v) for v in range(40)]
    started = time.perf_counter()
    accepted = sum(cap.offer(img) for img in images)
    assert time.perf_counter() - started < 1.0  # never waits for the store
    assert cap.dropped >= 40 - 4 - 32 and accepted + cap.dropped == 40
    cap.release.set()
    cap.close()
    assert len(captured_images(str(tmp_path / "cap"))) == accepted


def test_byte_bound_drops_large_images(tmp_path: Path) -> None:
    cap = _StuckStore(str(tmp_path / "cap"), max_queue_bytes=150, flush_interval_s=10)
    cap.release.clear()
    assert cap.offer(_png(1))  # ~70 bytes
    assert cap.offer(_png(2))
    assert not cap.offer(_png(3))  # would pass 150 bytes queued
    assert cap.dropped == 1
    cap.release.set()
    cap.close()


def test_a_store_failing_mid_write_leaves_nothing_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    cap = ImageCapture(str(tmp_path / "cap"), flush_interval_s=0.05)
    monkeypatch.setattr(os, "fsync", broken_fsync)
    cap.offer(_png(7))
    cap.close()
    monkeypatch.undo()
    assert cap.failed_writes == 1 and cap.written == 0
    leftovers = [p for p in (tmp_path / "cap").rglob("*") if p.is_file()]
    assert leftovers == []  # neither the image nor its temp file
    # the image was not remembered as stored: a later request captures it
    cap2 = ImageCapture(str(tmp_path / "cap"), flush_interval_s=0.05)
    assert cap2.offer(_png(7))
    cap2.close()
    assert cap2.written == 1


@pytest.mark.s3
def test_s3_prefix(make_bucket) -> None:  # type: ignore[no-untyped-def]
    from imgrec import storage

    bucket = make_bucket()
    cap = ImageCapture(f"s3://{bucket}/cap", flush_interval_s=0.05)
    a = _png(42)
    cap.offer(a)
    cap.offer(_png(43))
    cap.close()
    stored = captured_images(f"s3://{bucket}/cap")
    assert len(stored) == 2 and storage.read_bytes(stored[fingerprint(a)]) == a
    assert stored[fingerprint(a)].startswith(f"s3://{bucket}/cap/")


def test_server_captures_served_images_only(default_server, chelsea_jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    import base64
    import time

    from serving_helpers import jpeg_bytes

    other = jpeg_bytes(Image.new("RGB", (64, 48), (30, 140, 90)))
    good = {"image": {"b64": base64.b64encode(other).decode()}}
    bad_bytes = b"%PDF-1.4 not an image"
    bad = {"image": {"b64": base64.b64encode(bad_bytes).decode()}}
    assert default_server.v1([good, bad, good]).status_code == 200
    assert default_server.v1([bad]).status_code == 415  # the whole request failed
    assert default_server.predict_bytes(chelsea_jpeg).status_code == 200
    folder = str(default_server.capture_dir)
    deadline = time.monotonic() + 10
    stored: dict[str, str] = {}
    while time.monotonic() < deadline and len(stored) < 2:
        time.sleep(0.2)
        stored = captured_images(folder) if Path(folder).is_dir() else {}
    assert fingerprint(other) in stored and fingerprint(chelsea_jpeg) in stored
    assert fingerprint(bad_bytes) not in stored
    assert Path(stored[fingerprint(other)]).read_bytes() == other  # the bytes as sent
    assert len([p for p in Path(folder).rglob("*") if p.is_file()]) == len(stored)
