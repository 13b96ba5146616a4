"""A real Label Studio round trip on loopback: our tasks in, annotations made through its API,
its own JSON export back through ``imgrec label import``. Prints JSON.

Label Studio is not a project dependency (a Django app with its own pins); install it in its
own environment and point this script at it::

    python3 -m venv /tmp/lsvenv && /tmp/lsvenv/bin/pip install label-studio
    python benchmarks/labelstudio_roundtrip.py --label-studio /tmp/lsvenv/bin/label-studio \
        --save-export tests/labels/data/labelstudio-export.json

The annotations are the ground truth of generated images (no human). ``--save-export`` keeps
the export Label Studio produced (the fixture the tests import).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

TOKEN = "imgrec0roundtrip0token0000000000000000000"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(base: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        text = resp.read()
    return json.loads(text) if text else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--label-studio", default="label-studio")
    parser.add_argument("--save-export", default="")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "labels"))
    from label_fixtures import CLASSES, store_with_model, write_captures

    from imgrec.labels import export_tasks, import_labels

    tmp = Path(tempfile.mkdtemp(prefix="imgrec-ls-"))
    fps = write_captures(tmp / "cap", 6)
    store = store_with_model(tmp)
    export_tasks(str(tmp / "cap"), f"{store}@production", str(tmp / "tasks.json"))
    tasks = json.loads((tmp / "tasks.json").read_text())
    config = (tmp / "label_config.xml").read_text()

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
           "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(tmp / "cap")}  # fmt: skip
    cmd = [args.label_studio, "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(tmp / "ls-data"), "--username", "loop@imgrec.local",
           "--password", "imgrec-loop-1", "--user-token", TOKEN,
           "--enable-legacy-api-token"]  # fmt: skip
    started = time.perf_counter()
    log = open(tmp / "ls.log", "w")  # noqa: SIM115
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        while True:
            try:
                _call(base, "GET", "/api/projects")
                break
            except (urllib.error.URLError, OSError):
                if server.poll() is not None or time.perf_counter() - started > 600:
                    raise SystemExit(f"Label Studio did not start; see {tmp / 'ls.log'}") from None
                time.sleep(1)
        start_s = time.perf_counter() - started
        project = _call(base, "POST", "/api/projects", {"title": "imgrec", "label_config": config})
        pid = project["id"]
        _call(base, "POST", f"/api/projects/{pid}/import", tasks)
        listed = _call(base, "GET", f"/api/tasks?project={pid}&page_size=100")
        ls_tasks = listed["tasks"] if isinstance(listed, dict) else listed
        truth = {fp: CLASSES[i % 3] for i, fp in enumerate(fps)}
        annotated = 0
        for t in ls_tasks:
            fp = t["data"]["fingerprint"]
            if fp == fps[-1]:
                continue  # left unlabelled: must be refused as "no annotation"
            result = [{"from_name": "label", "to_name": "image", "type": "choices",
                       "value": {"choices": [truth[fp]]}}]  # fmt: skip
            _call(base, "POST", f"/api/tasks/{t['id']}/annotations", {"result": result})
            annotated += 1
        query = "exportType=JSON&download_all_tasks=true"
        export = _call(base, "GET", f"/api/projects/{pid}/export?{query}")
        (tmp / "export.json").write_text(json.dumps(export, indent=1))
        summary = import_labels(str(tmp / "export.json"), str(tmp / "cap"), str(tmp / "new"),
                                classes=CLASSES, skip_refused=True)  # fmt: skip
        got = {p.name.split(".")[0]: p.parent.name for p in (tmp / "new").rglob("*.png")}
        correct = sum(truth[f"sha256:{k}"] == v for k, v in got.items())
        if args.save_export:
            Path(args.save_export).parent.mkdir(parents=True, exist_ok=True)
            Path(args.save_export).write_text(json.dumps(export, indent=1) + "\n")
        print(json.dumps({
            "label_studio_start_s": round(start_s, 1),
            "tasks_imported": len(ls_tasks),
            "annotated": annotated,
            "exported_tasks": len(export),
            "imgrec_imported": summary["imported"],
            "labels_correct": correct,
            "refused": summary["refused"],
        }))  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
