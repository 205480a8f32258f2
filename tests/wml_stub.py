"""A loopback HTTPS stand-in for Watson Machine Learning (Cloud Pak for Data REST API) that records requests.

The real ``ibm-watsonx-ai`` APIClient talks to it: a throw-away self-signed certificate for 127.0.0.1
(made here with ``cryptography``) and a non-IBM-Cloud URL put the client in Cloud Pak for Data mode.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import ssl
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.http_stub import send_json

USERNAME, API_KEY = "wml-user", "wml-api-key-7c1d5e9a0b2f"
SPACE_ID, SPEC_ID = "3f7e6a5b-0c1d-4e2f-8a9b-5c6d7e8f9a0b", "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9"
ONNX_SPEC_ID = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
SPECS = {"runtime-24.1-py3.11": SPEC_ID, "onnxruntime_opset_19": ONNX_SPEC_ID}


def self_signed_certificate(folder: Path) -> tuple[str, str]:
    """(cert.pem, key.pem) for 127.0.0.1, valid for a day."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_file), str(key_file)


def jwt(username: str = USERNAME, lifetime: int = 3600) -> str:
    """An unsigned-looking JWT with the claims the client reads (exp, username)."""

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"username": username, "sub": username, "uid": "1000", "iat": int(time.time())}
    claims["exp"] = int(time.time()) + lifetime
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


class WatsonMLStub:
    """``refuse``: the authorize call fails (401); ``deployment_state``: the state deployments reach."""

    def __init__(self, folder: Path, refuse: bool = False, deployment_state: str = "ready"):
        self.refuse, self.deployment_state = refuse, deployment_state
        self.requests: list[dict] = []
        self.models: dict[str, dict] = {}
        self.deployments: dict[str, dict] = {}
        self.cert, key = self_signed_certificate(folder)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                stub.handle(self)

            def do_POST(self):
                stub.handle(self)

            def do_PUT(self):
                stub.handle(self)

            def do_PATCH(self):
                stub.handle(self)

            def do_DELETE(self):
                stub.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def calls(self) -> list[str]:
        return [f"{r['method']} {r['path']}" for r in self.requests]

    def handle(self, request) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        path, _, query = request.path.partition("?")
        record = {"method": request.command, "path": path, "query": query, "headers": dict(request.headers)}
        try:
            record["body"] = json.loads(raw) if raw else None
        except ValueError:
            record["body"] = raw
        self.requests.append(record)
        send_json(request, *self.answer(request.command, path, query, record["body"]))

    def answer(self, method: str, path: str, query: str, body):
        now = datetime.datetime.now(datetime.UTC).isoformat()
        if path == "/icp4d-api/v1/authorize":
            if self.refuse or body != {"username": USERNAME, "api_key": API_KEY}:
                return 401, {"_messageCode_": "401", "message": "Invalid username or api key"}
            return 200, {"token": jwt(), "_messageCode_": "200", "message": "Success"}
        if path == "/ml/wml_services/v2/version":
            return 200, {"version": "5.1.0"}
        if path == f"/v2/spaces/{SPACE_ID}":
            return 200, {
                "metadata": {"id": SPACE_ID, "created_at": now},
                "entity": {"name": "claimed", "status": {"state": "active"}},
            }
        if path == "/v2/software_specifications":
            wanted = urllib.parse.parse_qs(query).get("name")
            specs = [
                {"metadata": {"asset_id": asset, "name": name}, "entity": {"software_specification": {"name": name}}}
                for name, asset in SPECS.items()
                if not wanted or name in wanted
            ]
            return 200, {"total_results": len(specs), "resources": specs}
        if path == "/ml/v4/models" and method == "POST":
            model_id = str(uuid.UUID(int=len(self.models) + 1))
            self.models[model_id] = {
                "metadata": {
                    "id": model_id,
                    "space_id": SPACE_ID,
                    "created_at": now,
                    "modified_at": now,
                    "name": body.get("name"),
                },
                "entity": body,
            }
            return 201, self.models[model_id]
        match = re.fullmatch(r"/ml/v4/models/([^/]+)(/content)?", path)
        if match and match.group(1) in self.models:
            if match.group(2):
                return 201, {"attachment_id": "a-1", "content_format": "native", "persisted": True}
            return 200, self.models[match.group(1)]
        if path == "/ml/v4/deployments" and method == "POST":
            deployment_id = str(uuid.UUID(int=0xD << 64 | len(self.deployments) + 1))
            self.deployments[deployment_id] = {
                "metadata": {"id": deployment_id, "space_id": SPACE_ID, "created_at": now, "name": body.get("name")},
                "entity": dict(body, status={"state": "initializing"}),
            }
            return 202, self.deployments[deployment_id]
        match = re.fullmatch(r"/ml/v4/deployments/([^/]+)(/predictions)?", path)
        if match and match.group(1) in self.deployments:
            deployment = self.deployments[match.group(1)]
            if match.group(2):
                rows = body["input_data"][0]["values"]
                return 200, {
                    "predictions": [
                        {"id": "probabilities", "fields": ["probabilities"], "values": [[0.25, 0.75] for _ in rows]}
                    ]
                }
            state = {"state": self.deployment_state}
            if self.deployment_state == "ready":
                url = f"{self.url}/ml/v4/deployments/{match.group(1)}/predictions"
                state["online_url"] = {"url": url}
            else:
                state["failure"] = {
                    "errors": [{"code": "deployment_failed", "message": "the runtime could not load the model"}]
                }
            deployment["entity"]["status"] = state
            return 200, deployment
        return 404, {"errors": [{"code": "not_found", "message": f"{method} {path} not found"}]}
