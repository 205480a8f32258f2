"""A real Orthanc PACS (Debian's ``orthanc`` + ``orthanc-dicomweb``) on loopback ports, for the PACS tests.

Each server gets a temporary configuration and storage, HTTP basic auth (a random password) and
the AE title ``TESTPACS``; it knows our calling AE title ``CLAIMED`` (C-FIND, C-GET, C-STORE) and
sends C-MOVEs to it at ``127.0.0.1:move_port``.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import urllib.request
from base64 import b64encode
from pathlib import Path

from tests.service import Service
from tests.smtp_server import free_port

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
INSTALL = "apt-get install -y orthanc orthanc-dicomweb"
AE_TITLE = "TESTPACS"
USER = "claimed"


def available() -> bool:
    return Path(ORTHANC).exists() and DICOMWEB_PLUGIN.exists()


class Orthanc(Service):
    """``with Orthanc(folder) as pacs:`` starts Orthanc, waits until it answers, stops it on exit."""

    def __init__(self, folder: Path, http_threads: int = 50, move_port: int | None = None, **config):
        self.folder = folder
        self.config = config  # more configuration options (e.g. StableAge=1)
        self.http_port, self.dicom_port = free_port(), free_port()
        self.move_port = move_port or free_port()  # where Orthanc sends a C-MOVE to CLAIMED
        self.password = secrets.token_hex(12)
        self.http_threads = http_threads
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def address(self) -> str:
        return f"{AE_TITLE}@127.0.0.1:{self.dicom_port}"

    def connection(self) -> str:
        """``AIRFLOW_CONN_*`` JSON of a ``dicomweb`` connection to this server (basic auth)."""
        return json.dumps(
            {
                "conn_type": "dicomweb",
                "host": self.dicomweb_url,
                "login": USER,
                "password": self.password,
                "extra": {"allow_http": True},  # loopback
            }
        )

    def dimse_connection(self, **more) -> str:
        """``AIRFLOW_CONN_*`` JSON of a ``dicom`` connection (``more``: extras such as ``retrieve="move"``)."""
        extra = {"ae_title": AE_TITLE, "calling_ae_title": "CLAIMED", **more}
        return json.dumps({"conn_type": "dicom", "host": "127.0.0.1", "port": self.dicom_port, "extra": extra})

    def start(self) -> Orthanc:
        storage = self.folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "claimed-test",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": AE_TITLE,
            "DicomCheckCalledAet": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: self.password},
            "HttpThreadsCount": self.http_threads,
            "DicomModalities": {"claimed": ["CLAIMED", "127.0.0.1", self.move_port]},
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowGet": False,
            "StorageCompression": False,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "MainDicomTags"},
            **self.config,
        }
        path = self.folder / "orthanc.json"
        path.write_text(json.dumps(config))
        self.launch("Orthanc", [ORTHANC, str(path)], lambda: self.request("GET", "/system"))
        return self

    def request(self, method: str, path: str, data: bytes | None = None) -> bytes:
        """Orthanc's REST API (basic auth)."""
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", "Basic " + b64encode(f"{USER}:{self.password}".encode()).decode())
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.read()

    def upload(self, *files: Path) -> int:
        """``POST /instances`` each file; the number of files sent."""
        for path in files:
            self.request("POST", "/instances", path.read_bytes())
        return len(files)

    def instances(self) -> list[str]:
        return json.loads(self.request("GET", "/instances"))

    def statistics(self) -> dict:
        return json.loads(self.request("GET", "/statistics"))
