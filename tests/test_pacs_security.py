"""The PACS code against the five findings of its security review: credentials bound to their origin,
a private working folder, secrets checked when read, identifying query values kept out of logs and
manifests, and a hostile server bounded (size, pages, concurrency, one bad instance set aside)."""

from __future__ import annotations

import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydicom
import pytest

from claimed_airflow.components import _pacs
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run
from claimed_airflow.pacs import dicomweb, transfer
from tests import orthanc

pytest.importorskip("dicomweb_client")
TOKEN = "tok-" + "9f3a7c1e5b2d"


class FakeDicomWeb:
    """A DICOMweb server on loopback that records each request's headers and answers as told.

    ``instances``: SOP Instance UID -> body (bytes) and content type served by WADO-RS; QIDO-RS lists
    them all (``pages_forever``: every page full and new).
    """

    def __init__(self, instances: dict[str, tuple[bytes, str]] | None = None, pages_forever: bool = False):
        self.instances = instances or {}
        self.pages_forever = pages_forever
        self.headers: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                fake.headers.append(dict(self.headers))
                if "/instances/" in self.path:
                    body, kind = fake.instances[self.path.rsplit("/", 1)[1]]
                    return self.answer(body, kind)
                if fake.pages_forever:
                    offset = int(self.path.split("offset=")[1].split("&")[0]) if "offset=" in self.path else 0
                    items = [fake.item(f"1.2.3.{offset + n}") for n in range(dicomweb.PAGE)]
                else:
                    items = [fake.item(uid) for uid in fake.instances] if "offset=0" in self.path else []
                self.answer(json.dumps(items).encode(), "application/dicom+json")

            def answer(self, body: bytes, kind: str):
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dicom-web"

    @staticmethod
    def item(uid: str) -> dict:
        values = {"0020000D": "1.2.3", "0020000E": "1.2.3.1", "00080018": uid, "00080016": "1.2.840.10008.5.1.4.1.1.7"}
        return {tag: {"vr": "UI", "Value": [value]} for tag, value in values.items()}

    def __enter__(self) -> FakeDicomWeb:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def multipart(part: bytes, boundary: str = "b0undary") -> tuple[bytes, str]:
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


# ---------------------------------------------------------------- 1. credentials bound to their origin


def test_environment_credentials_go_only_to_their_own_url(tmp_path, monkeypatch):
    monkeypatch.setenv("DICOMWEB_TOKEN", TOKEN)
    monkeypatch.setenv("DICOMWEB_URL", "https://pacs.example.org/dicom-web")
    monkeypatch.setenv("CLAIMED_PACS_ALLOWED_HOSTS", "127.0.0.1")
    with FakeDicomWeb() as fake:
        with pytest.raises(ClaimedError, match="^source: no instance on"):
            run("input.dicom", {"source": "dicomweb+" + fake.url + "?modality=CT"}, root=str(tmp_path))
        assert fake.headers and not [h for h in fake.headers if "Authorization" in h]  # another host: no token
        monkeypatch.setenv("DICOMWEB_URL", fake.url)  # its own URL, but plain http
        with pytest.raises(ClaimedError, match="^url: no credentials over plain http"):
            run("input.dicomweb", {"conn_id": "", "url": fake.url}, root=str(tmp_path))


def test_a_connection_keeps_its_credentials_on_its_origin_and_off_plain_http(tmp_path, monkeypatch):
    conn = {"conn_type": "dicomweb", "host": "https://pacs.example.org/dicom-web", "password": TOKEN}
    monkeypatch.setenv("AIRFLOW_CONN_PACS_TLS", json.dumps(conn))
    with FakeDicomWeb() as fake:
        with pytest.raises(ClaimedError, match="^url: http://127.0.0.1:.* is not on the origin of connection"):
            run("input.dicomweb", {"conn_id": "pacs_tls", "url": fake.url}, root=str(tmp_path))
        monkeypatch.setenv("AIRFLOW_CONN_PACS_PLAIN", json.dumps({**conn, "host": fake.url}))
        with pytest.raises(ClaimedError, match="^url: no credentials over plain http"):
            run("input.dicomweb", {"conn_id": "pacs_plain"}, root=str(tmp_path))
        assert not fake.headers  # nothing was sent


def test_hosts_in_uris_only_from_the_allow_list(tmp_path, monkeypatch, dicom_folder):
    monkeypatch.delenv("CLAIMED_PACS_ALLOWED_HOSTS", raising=False)
    for uri in ("dicom://ANY@10.1.2.3:104", "dicomweb+https://evil.example.org/dicom-web"):
        with pytest.raises(ClaimedError, match="^destination: .* names a host; use a connection id"):
            _pacs.destination_server(uri)
        with pytest.raises(ClaimedError, match="^source: .* names a host; use a connection id"):
            _pacs.parse_source(uri + "?modality=CT")
    allowed = {"conn_type": "dicom", "host": "127.0.0.1", "port": 104, "extra": {"allowed_hosts": "10.1.2.3:104"}}
    monkeypatch.setenv(
        "AIRFLOW_CONN_DICOM_DEFAULT", json.dumps({**allowed, "extra": {**allowed["extra"], "ae_title": "X"}})
    )
    assert _pacs.destination_server("dicom://ANY@10.1.2.3:104")[1].host == "10.1.2.3"
    with pytest.raises(ClaimedError, match="names a host"):
        _pacs.destination_server("dicom://ANY@10.1.2.3:105")  # another port


# ---------------------------------------------------------------- 2. a private working folder


def test_the_working_folder_is_private_fresh_and_removed(tmp_path):
    first, kept = transfer.partial_folder("key")  # no task folder: the temp dir
    second, _ = transfer.partial_folder("key")
    assert not kept and first != second and "claimed-pacs" not in first.parent.name
    assert first.stat().st_mode & 0o777 == 0o700 and first.stat().st_uid == os.getuid()
    first.rmdir()
    second.rmdir()
    from claimed_airflow.core.context import RunContext, active

    task = tmp_path / "task"
    with active(RunContext(component="input.dicomweb", root=str(tmp_path), task_uri=str(task))):
        folder, kept = transfer.partial_folder("key")
        assert kept and folder.parent == task and folder.stat().st_mode & 0o777 == 0o700
        folder.chmod(0o777)  # another local user could write there
        with pytest.raises(ClaimedError, match="is not a private folder of ours"):
            transfer.partial_folder("key")


# ---------------------------------------------------------------- 3. secrets checked when read


def test_a_token_with_a_newline_is_stripped_or_refused_without_showing_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DICOMWEB_ALLOW_HTTP", "true")
    with FakeDicomWeb() as fake:
        monkeypatch.setenv("DICOMWEB_URL", fake.url)
        monkeypatch.setenv("DICOMWEB_TOKEN", TOKEN + "\n")  # read from a file
        with pytest.raises(ClaimedError, match="^source: no instance on"):
            run("input.dicomweb", {"conn_id": ""}, root=str(tmp_path))
        assert fake.headers[-1]["Authorization"] == f"Bearer {TOKEN}"
        monkeypatch.setenv("DICOMWEB_TOKEN", TOKEN + "\nX-Injected: 1")
        with pytest.raises(ClaimedError, match="^DICOMWEB_TOKEN: the secret holds whitespace") as info:
            run("input.dicomweb", {"conn_id": ""}, root=str(tmp_path))
        assert TOKEN not in str(info.value)
        conn = {"conn_type": "dicomweb", "host": fake.url, "password": "a b" + TOKEN, "extra": {"allow_http": True}}
        monkeypatch.setenv("AIRFLOW_CONN_PACS_BAD", json.dumps(conn))
        from claimed_airflow.hooks.dicomweb import DicomWebHook

        ok, message = DicomWebHook("pacs_bad").test_connection()
        assert not ok and TOKEN not in message and "whitespace" in message


# ---------------------------------------------------------------- 4. identifying values redacted


def test_patient_identifiers_used_as_filters_stay_out_of_logs_and_manifests(tmp_path, monkeypatch, caplog, shared_data):
    if not orthanc.available():
        pytest.skip(f"Orthanc is not installed ({orthanc.INSTALL})")
    source = pydicom.dcmread(shared_data / "dicom" / "pydicom" / "CT_small.dcm", stop_before_pixels=True)
    patient_id, name = str(source.PatientID), str(source.PatientName)
    with orthanc.Orthanc(tmp_path / "orthanc") as pacs:
        pacs.upload(shared_data / "dicom" / "pydicom" / "CT_small.dcm")
        monkeypatch.setenv("AIRFLOW_CONN_PACS_TEST", pacs.connection())
        args = {"conn_id": "pacs_test", "patient_id": patient_id, "level": "study"}
        with caplog.at_level(logging.INFO, logger="claimed_airflow"):
            result = run("input.dicomweb", args, root=str(tmp_path))
            with pytest.raises(ClaimedError) as info:  # no match: the error names the filters, not their values
                run("input.dicomweb", {**args, "filters": {"PatientName": name}}, root=str(tmp_path))
    assert result["files_read"] == 1  # the filter worked
    manifest = Path(result["manifest"]).read_text()
    for text in (caplog.text, manifest, str(info.value)):
        assert patient_id not in text and name not in text
    assert json.loads(manifest)["parameters"]["patient_id"] == "***"


# ---------------------------------------------------------------- 5. a hostile or broken server


def test_a_hostile_server_is_bounded_and_one_bad_instance_set_aside(tmp_path, monkeypatch, shared_data):
    good = (shared_data / "dicom" / "pydicom" / "CT_small.dcm").read_bytes()
    instances = {
        "1.2.3.1": multipart(good),
        "1.2.3.2": multipart(good + b"\0" * (2 << 20)),  # over the 1 MiB cap below
        "1.2.3.3": (b"\0" * 4096, "application/dicom"),  # not DICOM: not parsed with force
        "1.2.3.4": (b"--b0undary\r\nbroken", 'multipart/related; type="application/dicom"; boundary=zz'),
    }
    with FakeDicomWeb(instances) as fake:
        conn = {"conn_type": "dicomweb", "host": fake.url, "extra": {"max_instance_mb": 1}}
        monkeypatch.setenv("AIRFLOW_CONN_PACS_FAKE", json.dumps(conn))
        result = run("input.dicomweb", {"conn_id": "pacs_fake", "level": "instance"}, root=str(tmp_path))
        assert result["files_read"] == 1 and result["instances_found"] == 4
        reasons = {r["item"]: r["reason"] for r in json.loads(Path(result["manifest"]).read_text())["rejected"]}
        assert reasons["1.2.3.2"].startswith("larger than the 1048576 bytes allowed")
        assert reasons["1.2.3.3"] == "the server's answer is not a DICOM file (no Part 10 header)"
        assert reasons["1.2.3.4"].startswith("a malformed multipart answer")
        with pytest.raises(ClaimedError, match="^concurrency: expected 1 to 32, got 1000"):
            run("input.dicomweb", {"conn_id": "pacs_fake", "concurrency": 1000}, root=str(tmp_path))
    monkeypatch.setattr(dicomweb, "MAX_PAGES", 3)
    with FakeDicomWeb(pages_forever=True) as fake:
        monkeypatch.setenv("AIRFLOW_CONN_PACS_FAKE", json.dumps({"conn_type": "dicomweb", "host": fake.url}))
        with pytest.raises(ClaimedError, match="still had results after 3 pages"):
            run("input.dicomweb", {"conn_id": "pacs_fake", "level": "instance"}, root=str(tmp_path))
        assert len(fake.headers) == 3


def test_a_multipart_answer_split_anywhere_gives_its_first_part_only():
    part = b"\0" * 128 + b"DICM" + bytes(range(256)) * 40
    body, content_type = multipart(part)
    body = body.replace(b"--b0undary--", b"--b0undary\r\nContent-Type: application/dicom\r\n\r\nsecond\r\n--b0undary--")
    for size in (1, 7, 4096, len(body)):
        reader = dicomweb._FirstPart(content_type, cap=len(part))
        for start in range(0, len(body), size):
            reader.write(body[start : start + size])
        assert reader.finish() == part
    with pytest.raises(dicomweb.SetAside, match="^larger than the 100 bytes allowed"):
        dicomweb._FirstPart(content_type, cap=100).write(body)


def test_requests_go_on_while_the_caller_reads_a_file():
    """The caller busy with one file does not hold the other retrieve requests back."""
    from claimed_airflow.pacs.query import Instance

    instances = [Instance("1.2", "1.2.3", f"1.2.3.{n}") for n in range(6)]
    fetched = threading.Semaphore(0)

    def work(instance: Instance) -> Path:
        fetched.release()
        return Path(instance.file)

    results = dicomweb._bounded(work, instances, 2, None)
    next(results)  # the caller now reads its first file; the generator waits
    assert all(fetched.acquire(timeout=60) for _ in instances)  # meanwhile every instance was fetched
    assert len(list(results)) == len(instances) - 1
