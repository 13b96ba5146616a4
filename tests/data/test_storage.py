"""imgrec.storage on local paths and on a real (moto, loopback) S3 server."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from image_fixtures import BAD_CODES
from PIL import Image

from imgrec import storage
from imgrec.errors import NotFoundError, StorageError

pytestmark = pytest.mark.s3


@pytest.fixture(params=["local", "s3"])
def base(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A writable root: a local folder or ``s3://<fresh bucket>/root``."""
    if request.param == "local":
        return str(tmp_path / "root dir")
    make_bucket = request.getfixturevalue("make_bucket")
    return f"s3://{make_bucket()}/root"


def test_write_read_exists_size_delete(base: str) -> None:
    uri = storage.join(base, "sub", "a.bin")
    assert not storage.exists(uri)
    storage.write_bytes(uri, b"hello")
    assert storage.exists(uri)
    assert storage.read_bytes(uri) == b"hello"
    assert storage.size(uri) == 5
    storage.write_bytes(uri, b"replaced")
    assert storage.read_bytes(uri) == b"replaced"
    with storage.open_read(uri) as fh:
        assert fh.read() == b"replaced"
    storage.write_text(storage.join(base, "t.txt"), "ünïcode")
    assert storage.read_text(storage.join(base, "t.txt")) == "ünïcode"
    storage.delete(uri)
    assert not storage.exists(uri)
    storage.delete(uri)  # missing_ok by default
    with pytest.raises(NotFoundError):
        storage.delete(uri, missing_ok=False)


def test_missing_files_raise_not_found_naming_the_uri(base: str) -> None:
    uri = storage.join(base, "nope.png")
    for call in (storage.read_bytes, storage.size):
        with pytest.raises(NotFoundError) as info:
            call(uri)
        assert "nope.png" in info.value.message
        assert info.value.code == "not_found"
    with pytest.raises(NotFoundError), storage.open_read(uri):
        pass
    missing = storage.join(base, "no-such-folder")
    if storage.is_s3(base):  # an S3 prefix cannot be told apart from an empty one
        assert storage.list_files(missing) == []
    else:
        with pytest.raises(NotFoundError):
            storage.list_files(missing)


def test_list_files_sorted_filtered_recursive(base: str) -> None:
    for name in ["b/2.PNG", "a/1.png", "a/deep/3.jpg", "top.txt", "a/.DS_Store", ".git/x.png"]:
        storage.write_bytes(storage.join(base, name), b"x")
    everything = storage.list_files(base)
    rel = [p[len(base) + 1 :].replace(os.sep, "/") for p in everything]
    assert rel == ["a/1.png", "a/deep/3.jpg", "b/2.PNG", "top.txt"]
    images = storage.list_files(base, suffixes=[".png", ".jpg"])
    assert len(images) == 3 and images == sorted(images)
    assert storage.list_files(storage.join(base, "a"), recursive=False) == [
        storage.join(base, "a", "1.png")
    ]
    assert storage.list_dirs(base) == ["a", "b"]
    assert storage.is_dir(storage.join(base, "a"))
    assert not storage.is_dir(storage.join(base, "zzz"))


def test_copy_and_rename(base: str, tmp_path: Path) -> None:
    src = storage.join(base, "src.bin")
    storage.write_bytes(src, b"data")
    storage.copy(src, storage.join(base, "copy.bin"))
    assert storage.read_bytes(storage.join(base, "copy.bin")) == b"data"
    storage.rename(src, storage.join(base, "moved", "m.bin"))
    assert not storage.exists(src)
    assert storage.read_bytes(storage.join(base, "moved", "m.bin")) == b"data"
    local = tmp_path / "across.bin"
    storage.copy(storage.join(base, "copy.bin"), str(local))
    assert local.read_bytes() == b"data"
    with pytest.raises(NotFoundError):
        storage.copy(storage.join(base, "missing.bin"), storage.join(base, "x.bin"))


def test_local_write_is_atomic_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model.json"
    storage.write_bytes(target, b"old complete content")

    def crash(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StorageError, match="No space left") as info:
        storage.write_bytes(target, b"new")
    assert "model.json" in info.value.message
    monkeypatch.undo()
    assert target.read_bytes() == b"old complete content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]  # no temp file left


def test_local_write_into_a_file_path_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="cannot write"):
        storage.write_bytes(tmp_path / "file" / "child.txt", b"x")


def test_s3_uri_helpers() -> None:
    assert storage.is_s3("s3://b/k") and not storage.is_s3("/tmp/s3://x")
    assert storage.split_s3("s3://bucket/a/b.png") == ("bucket", "a/b.png")
    assert storage.join("s3://b/root/", "x", "/y.png") == "s3://b/root/x/y.png"
    assert storage.parent("s3://b/root/x.png") == "s3://b/root"
    assert storage.basename("s3://b/root/x.png") == "x.png"
    with pytest.raises(StorageError, match="bucket"):
        storage.split_s3("s3:///key")


def test_s3_missing_bucket_and_client_cache(s3_server: str) -> None:
    assert os.environ["AWS_ENDPOINT_URL"] == s3_server
    assert storage.s3_client() is storage.s3_client()
    assert storage.s3_client().meta.endpoint_url == s3_server
    with pytest.raises(NotFoundError, match="no-such-bucket"):
        storage.read_bytes("s3://no-such-bucket/a.png")
    with pytest.raises(StorageError, match="no object key"):
        storage.write_bytes("s3://bucket-only/", b"x")


def _put_png(uri: str, value: int) -> None:
    import io

    buf = io.BytesIO()
    Image.new("L", (8, 8), value).save(buf, format="PNG")
    storage.write_bytes(uri, buf.getvalue())


def test_load_image_from_s3(
    make_bucket: Callable[[], str], bad_image_files: dict[str, Path]
) -> None:
    from imgrec.data.images import load_image
    from imgrec.errors import ImageError

    bucket = make_bucket()
    storage.write_bytes(f"s3://{bucket}/e6.jpg", bad_image_files["exif_6"].read_bytes())
    local = np.asarray(load_image(bad_image_files["exif_6"]))
    assert np.array_equal(np.asarray(load_image(f"s3://{bucket}/e6.jpg")), local)
    storage.write_bytes(f"s3://{bucket}/bomb.png", bad_image_files["bomb"].read_bytes())
    with pytest.raises(ImageError) as info:
        load_image(f"s3://{bucket}/bomb.png")
    assert info.value.code == BAD_CODES["bomb"]
    assert f"s3://{bucket}/bomb.png" in info.value.message


def test_dataset_from_s3_imagefolder_and_csv(
    make_bucket: Callable[[], str], bad_image_files: dict[str, Path]
) -> None:
    from imgrec.data.dataset import load_classification_data

    bucket = make_bucket()
    root = f"s3://{bucket}/data"
    value = 0
    for split, n in (("train", 4), ("val", 2)):
        for cls in ("cat", "dog"):
            for i in range(n):
                value += 7
                _put_png(f"{root}/{split}/{cls}/{i}.png", value)
    storage.write_bytes(f"{root}/train/cat/bad.jpg", bad_image_files["truncated_jpeg"].read_bytes())
    data = load_classification_data(root)
    assert data.format == "imagefolder"
    assert data.classes == ["cat", "dog"]
    assert data.counts() == {"train": 8, "val": 4}
    assert all(r.path.startswith(f"{root}/") for r in data.splits["train"])
    assert [(b.path, b.code) for b in data.report.bad] == [
        (f"{root}/train/cat/bad.jpg", "corrupt_image")
    ]
    rows = ["path,label,split"] + [
        f"{split}/{cls}/{i}.png,{cls},{split}"
        for split, n in (("train", 4), ("val", 2))
        for cls in ("cat", "dog")
        for i in range(n)
    ]
    storage.write_text(f"{root}/manifest.csv", "\n".join(rows))
    manifest = load_classification_data(f"{root}/manifest.csv")
    assert manifest.format == "csv"
    assert manifest.counts() == {"train": 8, "val": 4}
    # Same files, labels and splits -> same fingerprint whatever the format.
    assert manifest.fingerprint == data.fingerprint


def test_local_write_gives_the_mode_of_a_plain_open(tmp_path: Path) -> None:
    """Not mkstemp's 0600: a model a pipeline step writes is read by the predictor's user."""
    storage.write_bytes(str(tmp_path / "atomic.json"), b"{}")
    (tmp_path / "plain.json").write_bytes(b"{}")
    assert oct((tmp_path / "atomic.json").stat().st_mode & 0o777) == oct(
        (tmp_path / "plain.json").stat().st_mode & 0o777
    )
