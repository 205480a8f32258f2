"""Shared by the loopback API stubs of the tests."""

from __future__ import annotations

import json


def send_json(handler, status: int, body) -> None:
    """Answer the request of ``handler`` (a BaseHTTPRequestHandler) with ``status`` and ``body`` as JSON."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
