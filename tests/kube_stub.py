"""A loopback stub of the Kubernetes API (no cluster runs here) that records every request.

``KubeStub`` answers scripted routes; ``InferenceServiceStub`` keeps KServe InferenceService objects
in memory like an API server (create, get, replace with resourceVersion, Ready or not).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.http_stub import send_json

NOT_FOUND = 404


def status(code: int, message: str) -> tuple[int, dict]:
    return code, {"kind": "Status", "message": message, "code": code}


class KubeStub:
    """``routes[(method, path)]``: (status, body) answers given in turn (the last one repeats); a path
    without its query also matches; other requests go to :meth:`answer`. ``refuse``: 401 to everything.
    Each request is recorded as a dict ``method``, ``path`` (with its query), ``body`` (parsed JSON) and
    ``authorization``."""

    def __init__(self, refuse: bool = False):
        self.refuse = refuse
        self.requests: list[dict] = []
        self.routes: dict[tuple[str, str], list[tuple[int, dict]]] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                record = {"method": self.command, "path": self.path, "body": body}
                stub.requests.append({**record, "authorization": self.headers.get("Authorization")})
                send_json(self, *stub.respond(self.command, self.path, body))

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, path) -> str:
        """A kubeconfig file for this stub (token user), as a Kubernetes connection points at it."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "stub", "cluster": {"server": self.url}}],
            "users": [{"name": "stub", "user": {"token": "stub-token"}}],
            "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub"}}],
            "current-context": "stub",
        }
        path.write_text(json.dumps(config))
        return str(path)

    def connection(self, folder, monkeypatch, conn_id: str = "k8s_stub", namespace: str | None = None) -> str:
        """An Airflow Kubernetes connection (cncf.kubernetes provider) whose kubeconfig points at this stub."""
        extra = {"kube_config_path": self.kubeconfig(folder / f"{conn_id}.kubeconfig.json")}
        if namespace:
            extra["namespace"] = namespace
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "kubernetes", "extra": extra}))
        return conn_id

    def respond(self, method: str, path: str, body) -> tuple[int, dict]:
        if self.refuse:
            return 401, {"kind": "Status", "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
        answers = self.routes.get((method, path)) or self.routes.get((method, path.split("?")[0]))
        if answers:
            return answers.pop(0) if len(answers) > 1 else answers[0]
        return self.answer(method, path.split("?")[0], body)

    def answer(self, method: str, path: str, body) -> tuple[int, dict]:
        return status(NOT_FOUND, f"{path} not found")


ISVC = re.compile(r"/apis/serving\.kserve\.io/v1beta1/namespaces/([^/]+)/inferenceservices(?:/([^/]+))?")


class InferenceServiceStub(KubeStub):
    """InferenceServices in memory; ``ready``: whether they become Ready."""

    def __init__(self, ready: bool = True, refuse: bool = False):
        super().__init__(refuse)
        self.ready = ready
        self.objects: dict[tuple[str, str], dict] = {}

    def answer(self, method: str, path: str, body) -> tuple[int, dict]:
        match = ISVC.fullmatch(path)
        if not match:
            return super().answer(method, path, body)
        namespace, name = match.groups()
        key = (namespace, name or (body or {}).get("metadata", {}).get("name"))
        if method == "GET":
            if key not in self.objects:
                return status(NOT_FOUND, f'inferenceservices "{key[1]}" not found')
            return 200, self.objects[key]
        if method == "POST":
            if key in self.objects:
                return status(409, "already exists")
            return 201, self.store(key, body, "1")
        if key not in self.objects:
            return status(NOT_FOUND, "not found")
        if body["metadata"].get("resourceVersion") != self.objects[key]["metadata"]["resourceVersion"]:
            return status(409, "the object has been modified")
        return 200, self.store(key, body, str(int(body["metadata"]["resourceVersion"]) + 1))

    def store(self, key, body, version: str) -> dict:
        obj = json.loads(json.dumps(body))
        obj["metadata"]["resourceVersion"] = version
        if self.ready:
            obj["status"] = {
                "url": f"http://{key[1]}.{key[0]}.example.com",
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        else:
            condition = {"type": "Ready", "status": "False", "reason": "RevisionMissing", "message": "no revision"}
            obj["status"] = {"conditions": [condition]}
        self.objects[key] = obj
        return obj
