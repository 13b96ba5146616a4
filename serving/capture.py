"""Image capture: keep the encoded bytes of a sample of served images, for labelling.

``imgrec serve --capture DEST --capture-rate R`` stores a fraction ``R`` of the images the
server predicted successfully under ``DEST`` (a local folder or ``s3://bucket/prefix``),
content-addressed by the prediction log's fingerprint::

    DEST/3f/3fa1c0d2e4b59a17.png        # sha256:3fa1c0d2e4b59a17, the bytes as received

so a second copy of the same image is stored once and joins with the prediction log by
``fingerprint``. The sample is decided by the fingerprint itself (its first 16 hex digits read
as a fraction of 2**64, kept when below ``R``): the same image is always in or always out, and
``R`` keeps its meaning across servers and restarts. Writes happen off the request path in a
:class:`~serving.background.BackgroundWriter` bounded to 4,096 images and 64 MiB: when the
store is slow new images are dropped and counted (``dropped``), never blocking a request. Each
file is written whole or not at all (local: temp file + rename; S3: one PUT). Images of failed
requests are never stored. Images may be personal data: capture is off by default
(docs/capture.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from imgrec import storage
from imgrec.data.captures import capture_key, fingerprint
from imgrec.errors import ConfigError
from imgrec.serving.background import BackgroundWriter


def sampled(fp: str, rate: float) -> bool:
    """Whether the image with fingerprint ``fp`` is in a ``rate`` sample (deterministic)."""
    if rate >= 1.0:
        return True
    return int(fp.split(":", 1)[-1][:16], 16) < rate * 2**64


@dataclass(frozen=True)
class CaptureItem:
    fingerprint: str
    data: bytes


class ImageCapture(BackgroundWriter[CaptureItem]):
    """Stores a sample of served images; see the module docstring.

    >>> cap = ImageCapture("captures", rate=0.1)          # doctest: +SKIP
    >>> cap.offer(png_bytes)                               # True: queued for writing
    """

    def __init__(
        self,
        uri: str,
        *,
        rate: float = 1.0,
        # the bytes bound is what protects memory; the count only caps a burst of tiny images
        # (make run's day sends 500 digits of ~1 KB at once: 256 was reached at 0.25 MiB)
        max_queue: int = 4096,
        max_queue_bytes: int = 64 << 20,
        flush_interval_s: float = 0.2,
    ) -> None:
        if not 0.0 < rate <= 1.0:
            raise ConfigError(
                f"capture rate must be in (0, 1], got {rate!r}",
                hint="fix --capture-rate (0.1 keeps one image in ten)",
            )
        self.uri = str(uri)
        self.rate = rate
        self.skipped_existing = 0
        self._seen: set[str] = set()  # fingerprints already stored or queued by this server
        super().__init__(
            "capture",
            max_queue=max_queue,
            max_batch=32,
            flush_interval_s=flush_interval_s,
            max_queue_bytes=max_queue_bytes,
        )

    def offer(self, data: bytes, fp: str | None = None) -> bool:
        """Queue ``data`` when it is in the sample and not yet stored; never blocks."""
        fp = fp or fingerprint(data)
        if not sampled(fp, self.rate) or fp in self._seen:
            return False
        if not self.append(CaptureItem(fp, data), nbytes=len(data)):
            return False
        self._seen.add(fp)
        return True

    def write_batch(self, batch: list[CaptureItem]) -> None:
        failed: Exception | None = None
        for item in batch:
            target = storage.join(self.uri, *capture_key(item.fingerprint, item.data).split("/"))
            try:
                if storage.exists(target):
                    self.skipped_existing += 1
                    continue
                storage.write_bytes(target, item.data)
                self.written += 1
            except Exception as exc:  # the next image may still go through; report at the end
                self._seen.discard(item.fingerprint)
                failed = exc
        if failed is not None:
            raise failed

    def stats(self) -> dict[str, int]:
        return {**super().stats(), "skipped_existing": self.skipped_existing}
