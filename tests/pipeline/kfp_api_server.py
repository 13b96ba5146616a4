"""A loopback HTTP server implementing the KFP v2beta1 REST calls imgrec makes, recording them.

Not a mock of kfp.Client: the real client (kfp + kfp-server-api) talks HTTP to this server,
which keeps pipelines, versions, experiments and runs in memory and answers in the API's JSON
shapes. Every request is recorded (method, path, query, JSON body or multipart parts) so tests
can check the bodies against kfp-server-api's models::

    with KfpApiServer() as kfp:
        upload(kfp.url, "training.yaml", name="imgrec-training", version="abc")
        kfp.requests[-1].path  # "/apis/v2beta1/pipelines/upload"
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import kfp_server_api

PREFIX = "/apis/v2beta1"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any = None  # parsed JSON, or {part name: bytes} for multipart uploads
    files: dict[str, bytes] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class KfpApiServer:
    """In-memory KFP API on 127.0.0.1 (a free port); ``run_states`` scripts a run's states."""

    def __init__(self, run_states: tuple[str, ...] = ("PENDING", "RUNNING", "SUCCEEDED")):
        self.requests: list[Recorded] = []
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.run_states = run_states
        self._reads: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> KfpApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()

    def _id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    def of(self, method: str, path_regex: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.fullmatch(path_regex, r.path)]

    # --- the API -------------------------------------------------------------------------
    def handle(self, rec: Recorded) -> tuple[int, dict[str, Any]]:
        m, path = rec.method, rec.path[len(PREFIX) :]
        q = {k: v[0] for k, v in rec.query.items()}
        if m == "GET" and path == "/healthz":
            return 200, {"multi_user": False}
        if m == "GET" and path == "/pipelines":
            return 200, self._list(self.pipelines.values(), q, "pipelines")
        if m == "POST" and path in ("/pipelines/upload", "/pipelines/upload_version"):
            return self._upload(path.endswith("version"), q, rec.files)
        match = re.fullmatch(r"/pipelines/([^/]+)/versions", path)
        if m == "GET" and match:
            versions = sorted(
                self.versions.get(match[1], []),
                key=lambda v: v["created_at"],
                reverse="desc" in q.get("sort_by", ""),
            )
            return 200, {"pipeline_versions": versions, "total_size": len(versions)}
        if m == "GET" and path == "/experiments":
            return 200, self._list(self.experiments.values(), q, "experiments")
        if m == "POST" and path == "/experiments":
            exp = {
                **rec.body,
                "experiment_id": self._id("experiment"),
                "created_at": _now(),
                "storage_state": "AVAILABLE",
            }
            self.experiments[exp["experiment_id"]] = exp
            return 200, exp
        if m == "POST" and path == "/runs":
            run = {
                **rec.body,
                "run_id": self._id("run"),
                "created_at": _now(),
                "state": self.run_states[0],
                "storage_state": "AVAILABLE",
            }
            self.runs[run["run_id"]] = run
            return 200, run
        match = re.fullmatch(r"/runs/([^/:]+)", path)
        if m == "GET" and match and match[1] in self.runs:
            run = self.runs[match[1]]
            n = self._reads[run["run_id"]] = self._reads.get(run["run_id"], 0) + 1
            run["state"] = self.run_states[min(n, len(self.run_states) - 1)]
            return 200, run
        return 404, {"error": f"no route {m} {rec.path}", "code": 5}

    def _list(self, items: Any, q: dict[str, str], key: str) -> dict[str, Any]:
        found = list(items)
        if q.get("filter"):
            for pred in json.loads(q["filter"]).get("predicates", []):
                found = [
                    i
                    for i in found
                    if i.get(pred["key"]) == pred.get("string_value", pred.get("stringValue"))
                ]
        return {key: found, "total_size": len(found)} if found else {"total_size": 0}

    def _upload(self, is_version: bool, q: dict[str, str], files: dict[str, bytes]):  # type: ignore[no-untyped-def]
        if "uploadfile" not in files:
            return 400, {"error": "missing uploadfile", "code": 3}
        if is_version:
            pid = q.get("pipelineid", "")
            if pid not in self.pipelines:
                return 404, {"error": f"pipeline {pid} not found", "code": 5}
        else:
            pid = self._id("pipeline")
            name = q.get("display_name") or q.get("name", "")
            self.pipelines[pid] = {
                "pipeline_id": pid,
                "display_name": name,
                "name": name,
                "description": q.get("description", ""),
                "created_at": _now(),
            }
        version = {
            "pipeline_id": pid,
            "pipeline_version_id": self._id("version"),
            "display_name": q.get("display_name") or q.get("name") or self.pipelines[pid]["name"],
            "created_at": _now(),
        }
        self.versions.setdefault(pid, []).append(version)
        return 200, version if is_version else self.pipelines[pid]

    # --- HTTP plumbing -------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlparse(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                rec = Recorded(self.command, url.path, parse_qs(url.query))
                ctype = self.headers.get("Content-Type", "")
                if ctype.startswith("multipart/form-data"):
                    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                        f"Content-Type: {ctype}\r\n\r\n".encode() + raw
                    )
                    for part in msg.iter_parts():
                        name = part.get_param("name", header="content-disposition")
                        rec.files[str(name)] = part.get_payload(decode=True)
                elif raw:
                    rec.body = json.loads(raw)
                with server._lock:
                    server.requests.append(rec)
                    status, doc = server.handle(rec)
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        return Handler


PRIMITIVES = {"str": str, "int": int, "bool": bool, "datetime": str, "object": object}


def model_problems(value: Any, type_name: str, path: str = "") -> list[str]:
    """Fields of ``value`` (JSON) that kfp-server-api's model ``type_name`` does not have."""
    if type_name.startswith("list["):
        return [
            p
            for i, v in enumerate(value)
            for p in model_problems(v, type_name[5:-1], f"{path}[{i}]")
        ]
    if type_name.startswith("dict("):
        inner = type_name[5:-1].split(", ", 1)[1]
        return [p for k, v in value.items() for p in model_problems(v, inner, f"{path}.{k}")]
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name])
        return [] if ok else [f"{path}: expected {type_name}, got {value!r}"]
    cls = getattr(kfp_server_api, type_name)
    if not hasattr(cls, "attribute_map"):  # enums (V2beta1RuntimeState, ...) are strings
        allowed = [v for k, v in vars(cls).items() if k.isupper()]
        return [] if value in allowed else [f"{path}: {value!r} not in {type_name}"]
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    problems = []
    for key, item in value.items():
        if key not in by_json:
            problems.append(f"{path}.{key}: not a field of {type_name}")
        elif item is not None:
            problems += model_problems(item, cls.openapi_types[by_json[key]], f"{path}.{key}")
    return problems
