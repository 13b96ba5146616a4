"""Local paths and ``s3://bucket/key`` URIs behind one small interface.

Every function takes either a local path (``str`` or ``Path``) or an ``s3://`` URI::

    from imgrec import storage

    storage.write_bytes("s3://bucket/runs/a.json", b"{}")   # S3 (honours AWS_ENDPOINT_URL)
    storage.write_bytes("out/a.json", b"{}")                # local: temp file + fsync + rename
    storage.list_files("s3://bucket/data", suffixes=[".png"])  # sorted URIs

S3 access uses boto3; the endpoint comes from ``AWS_ENDPOINT_URL`` (e.g. MinIO or moto) and the
credentials from the usual ``AWS_*`` variables. One client is created lazily per endpoint and
cached. Failures raise ``StorageError``; a missing file or key raises ``NotFoundError``; both
name the URI.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Union

from imgrec.errors import NotFoundError, StorageError

PathLike = Union[str, "os.PathLike[str]"]

S3_SCHEME = "s3://"
_CLIENTS: dict[tuple[str | None, str | None], Any] = {}
_CLIENTS_LOCK = threading.Lock()
_MISSING_CODES = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
# mkstemp makes 0600 files; an atomic write gives what a plain open() would (0666 & ~umask),
# so a model written by one user (a pipeline step) is readable by another (the predictor's).
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


def is_s3(uri: PathLike) -> bool:
    """True when ``uri`` is an ``s3://bucket/key`` URI."""
    return isinstance(uri, str) and uri.startswith(S3_SCHEME)


def split_s3(uri: str) -> tuple[str, str]:
    """``"s3://bucket/a/b.png"`` -> ``("bucket", "a/b.png")``; the key may be empty."""
    if not is_s3(uri):
        raise StorageError(f"not an s3:// URI: {uri!r}", hint="use s3://bucket/key")
    bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise StorageError(f"s3 URI without a bucket: {uri!r}", hint="use s3://bucket/key")
    return bucket, key


def join(base: PathLike, *parts: str) -> str:
    """Join path segments; for ``s3://`` always with ``/``. Returns a string."""
    if is_s3(base):
        out = str(base).rstrip("/")
        for part in parts:
            part = part.strip("/")
            if part:
                out = f"{out}/{part}"
        return out
    return str(Path(base, *parts))


def parent(uri: PathLike) -> str:
    """The folder holding ``uri`` (``s3://b/a/x.png`` -> ``s3://b/a``)."""
    if is_s3(uri):
        head, _, _ = str(uri).rstrip("/").rpartition("/")
        return head if len(head) > len(S3_SCHEME) else str(uri).rstrip("/")
    return str(Path(uri).parent)


def basename(uri: PathLike) -> str:
    """The last path segment (file or folder name)."""
    return str(uri).rstrip("/").rsplit("/", 1)[-1] if is_s3(uri) else Path(uri).name


# --- S3 client -------------------------------------------------------------------------
def s3_client() -> Any:
    """The boto3 S3 client for the current ``AWS_ENDPOINT_URL`` (created once, then cached)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    key = (endpoint, os.environ.get("AWS_ACCESS_KEY_ID"))
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError as exc:  # pragma: no cover - boto3 is a core dependency
                raise StorageError(
                    "boto3 is needed for s3:// URIs", hint="pip install boto3"
                ) from exc
            client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint,
                config=Config(retries={"max_attempts": 3, "mode": "standard"}),
            )
            _CLIENTS[key] = client
        return client


def _s3_error(exc: Exception, uri: str, action: str) -> StorageError:
    code = ""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    if code in _MISSING_CODES:
        return NotFoundError(f"{uri} does not exist", hint="check the bucket and key")
    return StorageError(
        f"cannot {action} {uri}: {exc}",
        hint="check AWS_ENDPOINT_URL, the credentials and the bucket name",
    )


# --- reading ---------------------------------------------------------------------------
def read_bytes(uri: PathLike) -> bytes:
    """Return the whole content of a local file or S3 object."""
    if is_s3(uri):
        uri = str(uri)
        bucket, key = split_s3(uri)
        try:
            body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
            with contextlib.closing(body):
                data: bytes = body.read()
            return data
        except Exception as exc:
            raise _s3_error(exc, uri, "read") from exc
    try:
        return Path(uri).read_bytes()
    except FileNotFoundError as exc:
        raise NotFoundError(f"{uri} does not exist", hint="check the path") from exc
    except IsADirectoryError as exc:
        raise StorageError(f"{uri} is a folder, not a file", hint="pass a file") from exc
    except OSError as exc:
        raise StorageError(f"cannot read {uri}: {exc.strerror or exc}") from exc


def read_text(uri: PathLike, encoding: str = "utf-8") -> str:
    """Return a text file's content decoded with ``encoding``."""
    try:
        return read_bytes(uri).decode(encoding)
    except UnicodeDecodeError as exc:
        raise StorageError(f"{uri} is not {encoding} text: {exc}") from exc


@contextlib.contextmanager
def open_read(uri: PathLike) -> Iterator[IO[bytes]]:
    """Open for binary reading (S3 objects are read into memory first)."""
    if is_s3(uri):
        yield io.BytesIO(read_bytes(uri))
        return
    try:
        fh = open(uri, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError as exc:
        raise NotFoundError(f"{uri} does not exist", hint="check the path") from exc
    except OSError as exc:
        raise StorageError(f"cannot open {uri}: {exc.strerror or exc}") from exc
    with fh:
        yield fh


@contextlib.contextmanager
def open_stream(uri: PathLike) -> Iterator[IO[bytes]]:
    """Open for sequential binary reading without holding the whole file: S3 objects are
    streamed from the response body as they are read (for large files such as tar shards)."""
    if not is_s3(uri):
        with open_read(uri) as fh:
            yield fh
        return
    bucket, key = split_s3(str(uri))
    try:
        body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
    except Exception as exc:
        raise _s3_error(exc, str(uri), "read") from exc
    with contextlib.closing(body):
        yield body


def exists(uri: PathLike) -> bool:
    """True when a file (or S3 object) exists; for S3 also when ``uri`` is a non-empty prefix."""
    if not is_s3(uri):
        return Path(uri).exists()
    uri = str(uri)
    bucket, key = split_s3(uri)
    client = s3_client()
    if key and not key.endswith("/"):
        try:
            client.head_object(Bucket=bucket, Key=key)
            return True
        except Exception as exc:
            err = _s3_error(exc, uri, "check")
            if not isinstance(err, NotFoundError):
                raise err from exc
    return is_dir(uri)


def is_dir(uri: PathLike) -> bool:
    """True for a local folder, or an S3 prefix holding at least one object."""
    if not is_s3(uri):
        return Path(uri).is_dir()
    uri = str(uri)
    bucket, key = split_s3(uri)
    prefix = key.rstrip("/") + "/" if key else ""
    try:
        resp = s3_client().list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except Exception as exc:
        err = _s3_error(exc, uri, "list")
        if isinstance(err, NotFoundError):
            return False
        raise err from exc
    return bool(resp.get("KeyCount", 0))


def _suffix_ok(name: str, suffixes: tuple[str, ...] | None) -> bool:
    return suffixes is None or name.lower().endswith(suffixes)


def list_files(
    uri: PathLike, suffixes: Iterable[str] | None = None, recursive: bool = True
) -> list[str]:
    """Sorted files under a folder or S3 prefix, optionally only those ending in ``suffixes``.

    Suffixes are matched case-insensitively (``[".jpg", ".png"]``). Hidden files and folders
    (names starting with ``.``) are skipped. A missing local folder raises ``NotFoundError``;
    an S3 prefix with no objects gives ``[]`` (S3 has no folders to be missing).
    """
    sfx = tuple(s.lower() for s in suffixes) if suffixes is not None else None
    if is_s3(uri):
        return _list_s3(str(uri), sfx, recursive)
    root = Path(uri)
    if not root.is_dir():
        if root.exists():
            raise StorageError(f"{uri} is a file, not a folder", hint="pass a folder")
        raise NotFoundError(f"{uri} does not exist", hint="check the path")
    out: list[str] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            out.extend(
                os.path.join(dirpath, f)
                for f in filenames
                if not f.startswith(".") and _suffix_ok(f, sfx)
            )
    else:
        with os.scandir(root) as entries:
            out.extend(
                e.path
                for e in entries
                if e.is_file() and not e.name.startswith(".") and _suffix_ok(e.name, sfx)
            )
    return sorted(out)


def _list_s3(uri: str, sfx: tuple[str, ...] | None, recursive: bool) -> list[str]:
    bucket, key = split_s3(uri)
    prefix = key.rstrip("/") + "/" if key else ""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if not recursive:
        kwargs["Delimiter"] = "/"
    out: list[str] = []
    try:
        for page in s3_client().get_paginator("list_objects_v2").paginate(**kwargs):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix) :]
                if not rel or rel.endswith("/"):
                    continue
                if any(part.startswith(".") for part in rel.split("/")):
                    continue
                if _suffix_ok(rel, sfx):
                    out.append(f"{S3_SCHEME}{bucket}/{obj['Key']}")
    except Exception as exc:
        raise _s3_error(exc, uri, "list") from exc
    return sorted(out)


def list_dirs(uri: PathLike) -> list[str]:
    """Sorted names (not paths) of the immediate non-hidden sub-folders / sub-prefixes."""
    if is_s3(uri):
        uri = str(uri)
        bucket, key = split_s3(uri)
        prefix = key.rstrip("/") + "/" if key else ""
        names: set[str] = set()
        try:
            pages = s3_client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
                for cp in page.get("CommonPrefixes", []):
                    names.add(cp["Prefix"][len(prefix) :].strip("/"))
        except Exception as exc:
            raise _s3_error(exc, uri, "list") from exc
        return sorted(n for n in names if n and not n.startswith("."))
    root = Path(uri)
    if not root.is_dir():
        raise NotFoundError(f"{uri} is not a folder", hint="check the path")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


# --- writing ---------------------------------------------------------------------------
def write_bytes(uri: PathLike, data: bytes) -> None:
    """Write ``data``; local writes are atomic (temp file beside it, fsync, rename)."""
    if is_s3(uri):
        uri = str(uri)
        bucket, key = split_s3(uri)
        if not key or key.endswith("/"):
            raise StorageError(f"cannot write to {uri}: no object key", hint="add a file name")
        try:
            s3_client().put_object(Bucket=bucket, Key=key, Body=data)
        except Exception as exc:
            raise _s3_error(exc, uri, "write") from exc
        return
    target = Path(uri)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            os.fchmod(fd, _FILE_MODE)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(target.parent)
    except OSError as exc:
        raise StorageError(
            f"cannot write {uri}: {exc.strerror or exc}", hint="check free space and permissions"
        ) from exc


def write_text(uri: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` (atomically for local paths)."""
    write_bytes(uri, text.encode(encoding))


def fsync_file(path: Path) -> None:
    """Flush a written file's data to disk (before it is renamed into place)."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable; best effort (not supported everywhere)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def delete(uri: PathLike, *, missing_ok: bool = True) -> None:
    """Delete a file or S3 object (not folders)."""
    if is_s3(uri):
        uri = str(uri)
        if not missing_ok and not exists(uri):
            raise NotFoundError(f"{uri} does not exist")
        bucket, key = split_s3(uri)
        try:
            s3_client().delete_object(Bucket=bucket, Key=key)
        except Exception as exc:
            raise _s3_error(exc, uri, "delete") from exc
        return
    try:
        Path(uri).unlink(missing_ok=missing_ok)
    except FileNotFoundError as exc:
        raise NotFoundError(f"{uri} does not exist") from exc
    except OSError as exc:
        raise StorageError(f"cannot delete {uri}: {exc.strerror or exc}") from exc


def copy(src: PathLike, dst: PathLike) -> None:
    """Copy one file between any two locations (local or S3)."""
    if is_s3(src) and is_s3(dst):
        sb, sk = split_s3(str(src))
        db, dk = split_s3(str(dst))
        try:
            s3_client().copy_object(Bucket=db, Key=dk, CopySource={"Bucket": sb, "Key": sk})
        except Exception as exc:
            raise _s3_error(exc, str(src), "copy") from exc
        return
    if not is_s3(src) and not is_s3(dst):
        if not Path(src).is_file():
            raise NotFoundError(f"{src} does not exist", hint="check the path")
        tmp = Path(dst).with_name(f".{Path(dst).name}.copy.tmp")
        try:
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StorageError(f"cannot copy {src} to {dst}: {exc.strerror or exc}") from exc
        return
    write_bytes(dst, read_bytes(src))


def rename(src: PathLike, dst: PathLike) -> None:
    """Move a file; atomic for two local paths on one filesystem, copy + delete otherwise."""
    if not is_s3(src) and not is_s3(dst):
        try:
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        except FileNotFoundError as exc:
            raise NotFoundError(f"{src} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot move {src} to {dst}: {exc.strerror or exc}") from exc
        return
    copy(src, dst)
    delete(src)


def size(uri: PathLike) -> int:
    """Size in bytes of a file or S3 object."""
    if is_s3(uri):
        uri = str(uri)
        bucket, key = split_s3(uri)
        try:
            return int(s3_client().head_object(Bucket=bucket, Key=key)["ContentLength"])
        except Exception as exc:
            raise _s3_error(exc, uri, "stat") from exc
    try:
        return Path(uri).stat().st_size
    except FileNotFoundError as exc:
        raise NotFoundError(f"{uri} does not exist") from exc


def cache_folder(kind: str) -> Path:
    """``$IMGREC_CACHE/<kind>`` (default ``~/.cache/imgrec/<kind>``): the one setting for
    every local cache imgrec keeps (ONNX exports, int8 models, frozen-backbone features)."""
    root = os.environ.get("IMGREC_CACHE") or str(Path.home() / ".cache" / "imgrec")
    return Path(root) / kind
