"""A loopback stub of the Kubernetes API that records the requests (no cluster runs here)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class KubeStub:
    """``routes[(method, path)]`` is a list of (status, body) answered in turn (the last one repeats)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.routes: dict[tuple[str, str], list[tuple[int, dict]]] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                stub.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "body": body,
                        "authorization": self.headers.get("Authorization"),
                    }
                )
                answers = stub.routes.get((self.command, self.path))
                status, reply = (
                    (answers.pop(0) if len(answers) > 1 else answers[0])
                    if answers
                    else (404, {"kind": "Status", "message": f"{self.path} not found"})
                )
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
