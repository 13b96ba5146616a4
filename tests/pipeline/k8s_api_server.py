"""A loopback HTTP server speaking the Kubernetes API calls of a training job's life, recorded.

Not a mock of the SDK: the real ``kubeflow-training`` ``TrainingClient`` and the ``kubernetes``
client's ``CustomObjectsApi`` (``TrainJobClient``) talk HTTP to this server, which keeps jobs in
memory and answers in the API's JSON shapes: create (POST), get (GET) and delete (DELETE) of
``/apis/kubeflow.org/v1/namespaces/NS/pytorchjobs[/NAME]`` (Training Operator v1) and
``/apis/trainer.kubeflow.org/v1alpha1/namespaces/NS/trainjobs[/NAME]`` (Trainer v2). The test
plays the operator with :meth:`K8sApiServer.set_state` (a condition, as the operator writes it)::

    with K8sApiServer() as k8s:
        client = k8s.training_client("kubeflow")
        ...
        k8s.set_state("kubeflow", name, "Succeeded")
        k8s.requests[0].method  # "POST"
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RESOURCES = {  # path prefix -> the plural the server keeps
    "/apis/kubeflow.org/v1/namespaces/": "pytorchjobs",
    "/apis/trainer.kubeflow.org/v1alpha1/namespaces/": "trainjobs",
}


@dataclass
class Recorded:
    method: str
    path: str
    body: Any = None


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class K8sApiServer:
    """PyTorchJobs in memory; ``on_create(namespace, name, job)`` runs in a thread per job."""

    def __init__(self, on_create: Callable[[str, str, dict], None] | None = None) -> None:
        self.jobs: dict[tuple[str, str], dict] = {}
        self.requests: list[Recorded] = []
        self.on_create = on_create
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> K8sApiServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        for t in self.threads:
            t.join(timeout=600)

    def configuration(self) -> Any:
        """A ``kubernetes`` client configuration pointing at this server."""
        from kubernetes import client

        config = client.Configuration()
        config.host = self.url
        return config

    def training_client(self, namespace: str) -> Any:
        from kubeflow.training import TrainingClient
        from kubernetes import client

        config = client.Configuration()
        config.host = self.url
        return TrainingClient(client_configuration=config, namespace=namespace)

    def set_state(self, namespace: str, name: str, state: str, message: str = "") -> None:
        """Append a true condition (and replica counts) the way the operator reports them."""
        with self.lock:
            job = self.jobs[(namespace, name)]
            status = job.setdefault("status", {})
            for c in status.get("conditions", []):
                if c["type"] in ("Running", "Created"):
                    c["status"] = "False" if state in ("Succeeded", "Failed") else c["status"]
            status.setdefault("conditions", []).append({
                "type": state, "status": "True", "reason": f"PyTorchJob{state}",
                "message": message or f"PyTorchJob {name} is {state.lower()}.",
                "lastTransitionTime": _now(), "lastUpdateTime": _now(),
            })  # fmt: skip
            key = {"Running": "active", "Succeeded": "succeeded", "Complete": "succeeded",
                   "Failed": "failed"}.get(state)  # fmt: skip
            if key and "pytorchReplicaSpecs" in job["spec"]:
                n = sum(s.get("replicas", 0) for s in job["spec"]["pytorchReplicaSpecs"].values())
                status["replicaStatuses"] = {"Master": {key: 1}, "Worker": {key: n - 1}}
            elif "trainer" in job["spec"]:  # a TrainJob: its JobSet's replicated job "node"
                counts = dict.fromkeys(("active", "failed", "ready", "succeeded", "suspended"), 0)
                if key:
                    counts[key] = job["spec"]["trainer"]["numNodes"]
                status["jobsStatus"] = [{"name": "node", **counts}]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _reply(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _parts(self) -> tuple[str, str] | None:
                path = self.path.split("?")[0]
                for prefix, plural in RESOURCES.items():
                    if path.startswith(prefix):
                        rest = path[len(prefix) :].split("/")
                        if len(rest) >= 2 and rest[1] == plural:
                            return rest[0], rest[2] if len(rest) > 2 else ""
                return None

            def _not_found(self, what: str) -> None:
                self._reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "message": f"{what} not found", "reason": "NotFound",
                                  "code": 404})  # fmt: skip

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(Recorded("POST", self.path, body))
                parts = self._parts()
                if parts is None or parts[1]:
                    return self._not_found(self.path)
                namespace, name = parts[0], body["metadata"]["name"]
                meta = {"namespace": namespace, "uid": f"uid-{name}", "creationTimestamp": _now()}
                job = {**body, "metadata": {**body["metadata"], **meta}}
                with server.lock:
                    server.jobs[(namespace, name)] = job
                if server.on_create is not None:
                    thread = threading.Thread(
                        target=server.on_create, args=(namespace, name, body), daemon=True
                    )
                    server.threads.append(thread)
                    thread.start()
                self._reply(201, job)

            def do_GET(self) -> None:
                server.requests.append(Recorded("GET", self.path))
                parts = self._parts()
                with server.lock:
                    job = server.jobs.get(parts) if parts else None
                    body = json.loads(json.dumps(job)) if job else None
                if body is None:
                    return self._not_found(self.path)
                self._reply(200, body)

            def do_DELETE(self) -> None:
                server.requests.append(Recorded("DELETE", self.path))
                parts = self._parts()
                with server.lock:
                    job = server.jobs.pop(parts, None) if parts else None
                if job is None:
                    return self._not_found(self.path)
                self._reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        return Handler
