"""Credentials inside URIs (userinfo, signed-URL query values) never reach logs or manifests."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from claimed_airflow.core import storage
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run

PASSWORD, SIGNATURE = "pw-S3CRET-7f1", "sig-S3CRET-93a"


@pytest.mark.parametrize(
    ("uri", "redacted"),
    [
        ("/data/images", "/data/images"),
        ("s3://bucket/a@b/x.csv", "s3://bucket/a@b/x.csv"),
        ("s3://AKIAX:wJal/rX+Utn@bucket/key", "s3://***@bucket/key"),
        ("https://user:pass@host:8443/p?q=1", "https://***@host:8443/p?q=***"),
        ("https://ghp_token@github.com/o/r.git", "https://***@github.com/o/r.git"),
        (
            "https://b.s3.amazonaws.com/k.csv?X-Amz-Credential=AK%2F1&X-Amz-Signature=abc&X-Amz-Expires=60",
            "https://b.s3.amazonaws.com/k.csv?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=***",
        ),
        (
            "https://a.blob.core.windows.net/c/f?sv=2022&sig=Zm9v%3D",
            "https://a.blob.core.windows.net/c/f?sv=***&sig=***",
        ),
        ("https://h/f?TOKENONLY#access_token=x", "https://h/f?***#***"),
        ("simplecache::s3://k:s@bucket/x", "simplecache::s3://***@bucket/x"),
        ("read 'https://u:p@h/x?sig=1' failed", "read 'https://***@h/x?sig=***' failed"),
        # PACS queries keep their filters and AE titles (no credentials there; masking "CR" would blank logs)
        (
            "dicomweb://pacs_default?modality=CR&study_date=20200101-",
            "dicomweb://pacs_default?modality=CR&study_date=20200101-",
        ),
        ("dicom://ORTHANC@127.0.0.1:4242?modality=CR", "dicom://ORTHANC@127.0.0.1:4242?modality=CR"),
        ("dicomweb+https://u:p@pacs/dicom-web?modality=CR", "dicomweb+https://***@pacs/dicom-web?modality=CR"),
    ],
)
def test_redact_removes_userinfo_query_values_and_fragments(uri, redacted):
    assert storage.redact(uri) == redacted
    assert storage.redact(redacted) == redacted
    assert not {"CR", "ORTHANC", "pacs_default"} & set(storage.uri_secrets(uri))


def test_redact_values_walks_records():
    record = {"inputs": {"a": {"uri": "https://u:p@h/x?sig=1", "hash": "sha256:00"}}, "n": 3, "l": ["s3://k:s@b/y"]}
    assert storage.redact_values(record) == {
        "inputs": {"a": {"uri": "https://***@h/x?sig=***", "hash": "sha256:00"}},
        "n": 3,
        "l": ["s3://***@b/y"],
    }


@pytest.fixture
def signed_server():
    """A loopback file server that answers only with the right password and signature (so the real URI is used)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            import base64

            auth = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
            ok = self.headers.get("Authorization") == auth and f"X-Amz-Signature={SIGNATURE}" in self.path
            body = b"x,y\n1,2\n3,4\n" if ok else b"denied"
            self.send_response(200 if ok else 403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://alice:{PASSWORD}@127.0.0.1:{server.server_port}"
    server.shutdown()


def test_manifest_and_log_hold_no_uri_credentials(signed_server, tmp_path, caplog):
    uri = f"{signed_server}/t.csv?X-Amz-Signature={SIGNATURE}&X-Amz-Expires=60"
    caplog.set_level(logging.INFO)
    result = run("filter.rows", {"table": uri, "condition": "x > 1"}, root=str(tmp_path))
    text = Path(result["manifest"]).read_text()
    record = json.loads(text)
    assert record["inputs"]["table"]["uri"].endswith("/t.csv?X-Amz-Signature=***&X-Amz-Expires=***")
    assert record["inputs"]["table"]["hash"].startswith("sha256:")  # the real URI was read
    assert result["rows_out"] == 1
    assert "running filter.rows" in caplog.text and "http://***@127.0.0.1" in caplog.text
    for secret in (PASSWORD, SIGNATURE):
        assert secret not in text
        assert secret not in caplog.text


def test_errors_about_a_uri_hold_no_credentials(signed_server, tmp_path):
    with pytest.raises(ClaimedError) as caught:
        missing = f"{signed_server}/missing.csv?sig={SIGNATURE}"
        run("filter.rows", {"table": missing, "condition": "x"}, root=str(tmp_path))
    assert PASSWORD not in str(caught.value) and SIGNATURE not in str(caught.value)


def test_cli_log_and_manifest_hold_no_uri_credentials(signed_server, tmp_path):
    uri = f"{signed_server}/t.csv?X-Amz-Signature={SIGNATURE}"
    xcom = tmp_path / "xcom" / "return.json"
    done = subprocess.run(
        [sys.executable, "-m", "claimed_airflow.cli", "run", "filter.rows", f"--table={uri}", "--condition=x > 1"]
        + ["--output-root", str(tmp_path / "out"), "--xcom-file", str(xcom)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    manifest = json.loads(xcom.read_text())["manifest"]
    for secret in (PASSWORD, SIGNATURE):
        assert secret not in done.stderr + done.stdout
        assert secret not in Path(manifest).read_text()


def test_uri_secrets_are_registered_with_airflows_masker(signed_server, tmp_path):
    pytest.importorskip("airflow.sdk")
    from airflow.sdk.log import redact

    uri = f"{signed_server}/t.csv?X-Amz-Signature={SIGNATURE}"
    run("filter.rows", {"table": uri, "condition": "x > 1"}, root=str(tmp_path))
    assert redact(f"a {PASSWORD} b {SIGNATURE}") == "a *** b ***"


def test_asset_events_carry_redacted_uris():
    from types import SimpleNamespace

    from airflow.sdk import Asset

    from claimed_airflow.operators.base import ClaimedOperator

    asset = Asset("s3://bucket/models")
    operator = ClaimedOperator(task_id="t", component="filter.rows", outlets=[asset])
    events = {asset: SimpleNamespace(extra={})}
    operator._annotate_outlets({"outlet_events": events}, {"output": f"https://u:{PASSWORD}@h/x?sig=1", "rows": 3})
    assert events[asset].extra == {"output": "https://***@h/x?sig=***", "rows": 3}
