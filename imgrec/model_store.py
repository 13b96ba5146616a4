"""The model store: numbered model versions and an atomically moved ``production`` pointer.

A store lives at a local folder or an ``s3://bucket/prefix`` (through :mod:`imgrec.storage`)::

    STORE/
      versions/0001/model/model.json           # the model directory (docs/design.md)
      versions/0001/model/weights.safetensors
      versions/0001/metadata.json              # metrics, dataset, gate decision, source
      versions/0001/COMPLETE                   # written last: every file with size and sha256
      production.json                          # the pointer: current version + rollback stack
      history/<time>-<event>-<version>.json    # append-only log, one object per event

Crash safety (BAD-INPUTS row 27): ``register`` writes the whole version, then its ``COMPLETE``
marker, then moves the pointer with one atomic write (local: temp file + fsync + ``os.replace``;
S3: one ``PUT`` of a small object, which S3 applies atomically). A version without its marker is
invisible to ``list``/``promote``, so a kill at any moment leaves ``production`` on the old or the
new complete version. Example::

    store = ModelStore("s3://models/digits")
    v = store.register("runs/exp1/model", metadata={"metrics": {"accuracy": 0.99}})
    store.production().version        # -> v.version
    store.rollback()                   # back to the previous production version
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from imgrec import storage
from imgrec.errors import ImgrecError, ModelError, NotFoundError, StorageError

POINTER = "production.json"
MARKER = "COMPLETE"
METADATA = "metadata.json"
MODEL_SUBDIR = "model"
_VERSION_DIR = re.compile(r"^\d{4,}$")
_MAX_CLAIM_TRIES = 50


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _vname(version: int) -> str:
    return f"{version:04d}"


@dataclass(frozen=True)
class ModelVersion:
    """One complete version in the store."""

    version: int
    uri: str  # the version folder
    created: str
    metadata: dict[str, Any] = field(default_factory=dict)
    production: bool = False

    @property
    def model_uri(self) -> str:
        """The model directory of this version (loadable by ``imgrec.load_model``)."""
        return storage.join(self.uri, MODEL_SUBDIR)

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.metadata.get("metrics") or {})

    def to_dict(self) -> dict[str, Any]:
        """JSON form used by ``imgrec models list --json``."""
        return {
            "version": self.version,
            "production": self.production,
            "created": self.created,
            "uri": self.uri,
            "model_uri": self.model_uri,
            "metrics": self.metrics,
            "metadata": self.metadata,
        }


class ModelStore:
    """Versions of models at a local folder or ``s3://`` prefix; see the module docstring."""

    def __init__(self, uri: str | os.PathLike[str]) -> None:
        self.uri = str(uri).rstrip("/") if storage.is_s3(str(uri)) else str(uri)

    def __repr__(self) -> str:
        return f"ModelStore({self.uri!r})"

    # --- paths -------------------------------------------------------------------------
    def _version_uri(self, version: int) -> str:
        return storage.join(self.uri, "versions", _vname(version))

    def _pointer_uri(self) -> str:
        return storage.join(self.uri, POINTER)

    # --- reading -----------------------------------------------------------------------
    def _version_numbers(self) -> list[int]:
        root = storage.join(self.uri, "versions")
        if not storage.is_dir(root):
            return []
        return sorted(int(n) for n in storage.list_dirs(root) if _VERSION_DIR.match(n))

    def _read_json(self, uri: str) -> dict[str, Any]:
        try:
            data = json.loads(storage.read_text(uri))
        except json.JSONDecodeError as exc:
            raise StorageError(
                f"{uri} is not valid JSON: {exc}", hint="the store is damaged"
            ) from exc
        if not isinstance(data, dict):
            raise StorageError(f"{uri} does not hold a JSON object", hint="the store is damaged")
        return data

    def is_complete(self, version: int) -> bool:
        """True when the version's completion marker exists (all its files were written)."""
        return storage.exists(storage.join(self._version_uri(version), MARKER))

    def pointer(self) -> dict[str, Any] | None:
        """The raw ``production.json`` content, or ``None`` before the first promotion."""
        uri = self._pointer_uri()
        try:
            return self._read_json(uri)
        except NotFoundError:
            return None

    def production_version(self) -> int | None:
        """The version number ``production`` points at, or ``None``."""
        ptr = self.pointer()
        return int(ptr["version"]) if ptr and ptr.get("version") is not None else None

    def get(self, version: int) -> ModelVersion:
        """The complete version ``version``; ``NotFoundError`` if absent or incomplete."""
        vuri = self._version_uri(version)
        if not self.is_complete(version):
            known = ", ".join(str(v.version) for v in self.versions()) or "none"
            raise NotFoundError(
                f"model version {version} does not exist in {self.uri} (or is incomplete)",
                hint=f"complete versions: {known}; see `imgrec models list --store {self.uri}`",
            )
        meta = self._read_json(storage.join(vuri, METADATA))
        return ModelVersion(
            version=version,
            uri=vuri,
            created=str(meta.get("created", "")),
            metadata=meta,
            production=self.production_version() == version,
        )

    def versions(self) -> list[ModelVersion]:
        """All complete versions, oldest first (incomplete ones are left out)."""
        prod = self.production_version()
        out = []
        for number in self._version_numbers():
            if not self.is_complete(number):
                continue
            vuri = self._version_uri(number)
            meta = self._read_json(storage.join(vuri, METADATA))
            out.append(
                ModelVersion(number, vuri, str(meta.get("created", "")), meta, prod == number)
            )
        return out

    def production(self) -> ModelVersion | None:
        """The current production version, or ``None`` when nothing was promoted yet."""
        number = self.production_version()
        return None if number is None else self.get(number)

    def history(self) -> list[dict[str, Any]]:
        """Every pointer move and registration, oldest first."""
        root = storage.join(self.uri, "history")
        if not storage.is_dir(root):
            return []
        return [self._read_json(uri) for uri in storage.list_files(root, suffixes=[".json"])]

    def verify(self, version: int) -> None:
        """Check every file of ``version`` against its marker; ``ModelError`` on a mismatch."""
        vuri = self._version_uri(version)
        marker = self._read_json(storage.join(vuri, MARKER))
        for rel, expected in marker.get("files", {}).items():
            data = storage.read_bytes(storage.join(vuri, rel))
            if hashlib.sha256(data).hexdigest() != expected["sha256"]:
                raise ModelError(
                    f"{storage.join(vuri, rel)} does not match its recorded sha256",
                    hint="the store was modified after registration; re-register the model",
                )

    # --- writing -----------------------------------------------------------------------
    def _claim(self) -> int:
        """Reserve the next version number (local: mkdir; S3: create-if-absent PUT)."""
        existing = self._version_numbers()
        number = (existing[-1] if existing else 0) + 1
        for _ in range(_MAX_CLAIM_TRIES):
            vuri = self._version_uri(number)
            if storage.is_s3(vuri):
                bucket, key = storage.split_s3(storage.join(vuri, ".claim"))
                try:
                    storage.s3_client().put_object(
                        Bucket=bucket, Key=key, Body=_now().encode(), IfNoneMatch="*"
                    )
                    return number
                except Exception as exc:
                    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
                    if code not in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                        raise StorageError(
                            f"cannot create model version {number} in {self.uri}: {exc}",
                            hint="check AWS_ENDPOINT_URL, the credentials and the bucket",
                        ) from exc
            else:
                try:
                    Path(vuri).mkdir(parents=True)
                    return number
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise StorageError(
                        f"cannot create {vuri}: {exc.strerror or exc}",
                        hint="check the store path and its permissions",
                    ) from exc
            number += 1
        raise StorageError(f"could not reserve a version number in {self.uri}")

    def _log(self, event: str, version: int, **fields: Any) -> None:
        stamp = _now()
        name = f"{stamp.replace(':', '').replace('-', '')}-{event}-{_vname(version)}.json"
        record = {"time": stamp, "event": event, "version": version, **fields}
        storage.write_text(storage.join(self.uri, "history", name), json.dumps(record, indent=1))

    def register(
        self,
        model_dir: str | os.PathLike[str],
        *,
        metadata: dict[str, Any] | None = None,
        promote: bool = True,
        reason: str = "registered",
        attachments: dict[str, bytes] | None = None,
    ) -> ModelVersion:
        """Copy a model directory into a new version; with ``promote`` make it production.

        ``metadata`` (metrics, dataset, gate decision, ...) is stored beside the model, and so
        is each of ``attachments`` (``{file name: content}``, e.g. the drift monitor's
        ``reference.json``). The version becomes visible only once every file and its
        completion marker are written.
        """
        src = str(model_dir)
        files = storage.list_files(src) if storage.is_dir(src) else []
        names = {storage.basename(f) for f in files}
        if "model.json" not in names:
            raise ModelError(
                f"{src} is not a model directory (no model.json)",
                hint="pass RUN_DIR/model as written by `imgrec train`",
            )
        number = self._claim()
        vuri = self._version_uri(number)
        listing: dict[str, dict[str, Any]] = {}
        base = src.rstrip("/")
        for f in files:
            rel = f[len(base) :].lstrip("/\\").replace(os.sep, "/")
            data = storage.read_bytes(f)
            target_rel = f"{MODEL_SUBDIR}/{rel}"
            storage.write_bytes(storage.join(vuri, *target_rel.split("/")), data)
            listing[target_rel] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        meta = {
            **(metadata or {}),
            "version": number,
            "created": _now(),
            "source": src,
        }
        meta_bytes = json.dumps(meta, indent=1, sort_keys=True, default=str).encode()
        storage.write_bytes(storage.join(vuri, METADATA), meta_bytes)
        listing[METADATA] = {
            "bytes": len(meta_bytes),
            "sha256": hashlib.sha256(meta_bytes).hexdigest(),
        }
        for name, data in (attachments or {}).items():
            storage.write_bytes(storage.join(vuri, name), data)
            listing[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        marker = {"version": number, "completed": _now(), "files": listing}
        storage.write_text(storage.join(vuri, MARKER), json.dumps(marker, indent=1))
        self._log("register", number, source=src)
        if promote:
            self._move_pointer(number, event="promote", reason=reason)
        return self.get(number)

    def attach(self, version: int, name: str, data: bytes) -> str:
        """Store ``data`` as file ``name`` beside the complete version ``version`` (replacing
        it) and list it in the version's marker; returns its URI."""
        self.get(version)
        vuri = self._version_uri(version)
        marker = self._read_json(storage.join(vuri, MARKER))
        storage.write_bytes(storage.join(vuri, name), data)
        marker.setdefault("files", {})[name] = {
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        storage.write_text(storage.join(vuri, MARKER), json.dumps(marker, indent=1))
        self._log("attach", version, file=name)
        return storage.join(vuri, name)

    def _move_pointer(
        self, number: int, *, event: str, reason: str, stack: list[int] | None = None
    ) -> None:
        old = self.pointer() or {}
        if stack is None:
            stack = [int(v) for v in old.get("stack", [])]
            if old.get("version") is not None:
                stack.append(int(old["version"]))
        pointer = {
            "version": number,
            "updated": _now(),
            "event": event,
            "reason": reason,
            "previous": old.get("version"),
            "stack": stack,  # earlier production versions, most recent last (for rollback)
        }
        # The single atomic step that changes what is in production.
        storage.write_text(self._pointer_uri(), json.dumps(pointer, indent=1))
        self._log(event, number, previous=old.get("version"), reason=reason)

    def promote(self, version: int, *, reason: str = "promoted by hand") -> ModelVersion:
        """Point ``production`` at the complete version ``version``."""
        self.get(version)  # raises NotFoundError for unknown / incomplete versions
        self._move_pointer(version, event="promote", reason=reason)
        return self.get(version)

    def rollback(self, *, to: int | None = None, reason: str = "rollback") -> ModelVersion:
        """Move ``production`` back to the previous production version (or to ``to``)."""
        ptr = self.pointer()
        if not ptr:
            raise ImgrecError(
                f"nothing to roll back in {self.uri}: no production version yet",
                hint="register or promote a model first",
                code="nothing_to_roll_back",
            )
        stack = [int(v) for v in ptr.get("stack", [])]
        current = int(ptr["version"])
        if to is None:
            while stack and stack[-1] == current:
                stack.pop()
            if not stack:
                raise ImgrecError(
                    f"version {current} is the first production version in {self.uri}",
                    hint="use `imgrec models promote VERSION` to choose another version",
                    code="nothing_to_roll_back",
                )
            target = stack.pop()
        else:
            target = to
            if target in stack:
                stack = stack[: stack.index(target)]
        self.get(target)
        self._move_pointer(target, event="rollback", reason=reason, stack=stack)
        return self.get(target)

    def fetch(self, version: int, dest: str | os.PathLike[str]) -> Path:
        """Copy a version's model directory to a local folder (for S3 stores) and return it."""
        mv = self.get(version)
        out = Path(dest)
        for f in storage.list_files(mv.model_uri):
            rel = f[len(mv.model_uri.rstrip("/")) :].lstrip("/\\")
            storage.write_bytes(out / rel, storage.read_bytes(f))
        return out


def resolve_store_ref(text: str) -> ModelVersion | None:
    """The store version named by ``STORE@production``, ``STORE@3`` or a bare ``STORE`` (a
    folder or prefix holding ``production.json``); ``None`` when ``text`` names no store (a
    model directory or a pretrained name). Raises ``NotFoundError`` for a missing version."""
    store_uri, _, selector = text.rpartition("@") if "@" in text else (text, "", "")
    if not selector:
        store_uri = text
    if not selector and not storage.exists(storage.join(store_uri, POINTER)):
        return None
    store = ModelStore(store_uri)
    if selector in ("", "production"):
        version = store.production()
        if version is None:
            raise NotFoundError(
                f"model store {store_uri} has no production version yet",
                hint=f"promote one: `imgrec models promote VERSION --store {store_uri}`",
            )
        return version
    if selector.isdigit():
        return store.get(int(selector))
    raise NotFoundError(
        f"unknown version selector {selector!r} in {text!r}",
        hint="use STORE@production or STORE@<number>",
    )
