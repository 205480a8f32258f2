"""A small client of the Kubernetes API for the components that submit Kubeflow jobs (TFJob, Katib).

It speaks plain HTTPS with the pod's service account (in cluster) or an explicit API URL and token
file, so no Kubernetes client library is needed. The token is sent, never logged.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeApi:
    """``url``: API server (default: in cluster); ``token_file``: bearer token (default: the service account's)."""

    def __init__(self, url: str | None = None, token_file: str | None = None, ca_file: str | None = None):
        if not url:
            host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise ClaimedError("kube_url: not running in a Kubernetes cluster; give the API server URL")
            url = f"https://{host}:{port}"
            token_file = token_file or str(SERVICE_ACCOUNT / "token")
            ca_file = ca_file or str(SERVICE_ACCOUNT / "ca.crt")
        self.url = url.rstrip("/")
        self._token = Path(token_file).read_text().strip() if token_file and Path(token_file).exists() else None
        if token_file and self._token is None:
            raise ClaimedError(f"kube_token_file: {token_file} not found")
        self._context = ssl.create_default_context(cafile=ca_file) if ca_file and Path(ca_file).exists() else None

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30, context=self._context) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("message", "")
            except ValueError:
                message = ""
            raise KubeError(exc.code, f"{method} {path}: HTTP {exc.code} {message or exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ClaimedError(f"kube_url: cannot reach the Kubernetes API at {self.url}: {exc}") from None

    def create(self, api: str, namespace: str, plural: str, body: dict) -> dict:
        return self.request("POST", f"/apis/{api}/namespaces/{namespace}/{plural}", body)

    def get(self, api: str, namespace: str, plural: str, name: str) -> dict:
        return self.request("GET", f"/apis/{api}/namespaces/{namespace}/{plural}/{name}")

    def wait(
        self,
        api: str,
        namespace: str,
        plural: str,
        name: str,
        finished: Callable[[dict], str | None],
        timeout: float,
        interval: float = 5.0,
    ) -> tuple[str, dict]:
        """Poll until ``finished(obj)`` gives a final state; ``ClaimedError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self.get(api, namespace, plural, name)
            state = finished(obj)
            if state:
                return state, obj
            if time.monotonic() >= deadline:
                raise ClaimedError(f"timeout: {plural}/{name} did not finish within {timeout:g} s")
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


class KubeError(ClaimedError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def condition(obj: dict, *types: str) -> str | None:
    """The first of ``types`` that is a True condition of ``obj.status.conditions``."""
    for item in obj.get("status", {}).get("conditions", []) or []:
        if item.get("type") in types and str(item.get("status")) == "True":
            return item["type"]
    return None


def dns_name(text: str, limit: int = 50) -> str:
    """A Kubernetes object name (RFC 1123 label) derived from ``text``."""
    name = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    while "--" in name:
        name = name.replace("--", "-")
    return name[:limit].strip("-") or "claimed"
