"""A loopback stand-in for the Kubernetes API: InferenceService objects in memory, every request recorded."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = re.compile(r"/apis/serving\.kserve\.io/v1beta1/namespaces/([^/]+)/inferenceservices(?:/([^/]+))?")


class KubernetesStub:
    """``ready``: whether services become Ready; ``refuse``: answer 401 to everything."""

    def __init__(self, ready: bool = True, refuse: bool = False):
        self.ready, self.refuse = ready, refuse
        self.objects: dict[tuple[str, str], dict] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                stub.handle(self, "GET")

            def do_POST(self):
                stub.handle(self, "POST")

            def do_PUT(self):
                stub.handle(self, "PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, path) -> str:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "stub", "cluster": {"server": self.url}}],
                    "users": [{"name": "stub", "user": {"token": "stub-token"}}],
                    "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub"}}],
                    "current-context": "stub",
                }
            )
        )
        return str(path)

    def handle(self, request, method: str) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = json.loads(request.rfile.read(length)) if length else None
        self.requests.append((method, request.path.split("?")[0], body))
        status, answer = self.answer(method, request.path.split("?")[0], body)
        data = json.dumps(answer).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def answer(self, method: str, path: str, body):
        if self.refuse:
            return 401, {"kind": "Status", "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
        match = PATH.fullmatch(path)
        if not match:
            return 404, {"kind": "Status", "message": f"{path} not found", "code": 404}
        namespace, name = match.groups()
        key = (namespace, name or (body or {}).get("metadata", {}).get("name"))
        if method == "GET":
            if key not in self.objects:
                return 404, {"kind": "Status", "message": f'inferenceservices "{key[1]}" not found', "code": 404}
            return 200, self.objects[key]
        if method == "POST":
            if key in self.objects:
                return 409, {"kind": "Status", "message": "already exists", "code": 409}
            return 201, self.store(key, body, "1")
        if key not in self.objects:
            return 404, {"kind": "Status", "message": "not found", "code": 404}
        if body["metadata"].get("resourceVersion") != self.objects[key]["metadata"]["resourceVersion"]:
            return 409, {"kind": "Status", "message": "the object has been modified", "code": 409}
        return 200, self.store(key, body, str(int(body["metadata"]["resourceVersion"]) + 1))

    def store(self, key, body, version: str) -> dict:
        obj = json.loads(json.dumps(body))
        obj["metadata"]["resourceVersion"] = version
        if self.ready:
            url = f"http://{key[1]}.{key[0]}.example.com"
            obj["status"] = {"url": url, "conditions": [{"type": "Ready", "status": "True"}]}
        else:
            condition = {"type": "Ready", "status": "False", "reason": "RevisionMissing", "message": "no revision"}
            obj["status"] = {"conditions": [condition]}
        self.objects[key] = obj
        return obj
