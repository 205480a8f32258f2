"""A second real PACS for the PACS tests: DCMTK's ``dcmqrscp`` (Debian ``dcmtk``) on a loopback port.

``Dcmqrscp(folder)`` runs it in its default configuration, which accepts uncompressed transfer
syntaxes only; ``Dcmqrscp(folder, compressed=True)`` gives it an association profile that accepts
every transfer syntax DCMTK knows for the storage SOP classes (``-xf``, the ``AnyTransferSyntax`` of
DCMTK's own ``storescp.cfg``). ``move_destinations`` lists the AE titles it may C-MOVE to.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

from tests.service import Service
from tests.smtp_server import free_port

DCMQRSCP = shutil.which("dcmqrscp") or "/usr/bin/dcmqrscp"
STORESCP_CFG = Path("/etc/dcmtk/storescp.cfg")
INSTALL = "apt-get install -y dcmtk"
AE_TITLE = "DCMQR"


def available() -> bool:
    return Path(DCMQRSCP).exists() and STORESCP_CFG.exists()


def _storage_contexts() -> list[str]:
    """The storage SOP classes of DCMTK's ``GenericStorageSCP`` profile (``storescp.cfg``)."""
    names, inside = [], False
    for line in STORESCP_CFG.read_text().splitlines():
        if line.strip() == "[GenericStorageSCP]":
            inside = True
        elif inside and line.startswith("["):
            break
        elif inside and line.startswith("PresentationContext") and "=" in line:
            name = line.split("=", 1)[1].strip().split("\\")[0]
            if name != "VerificationSOPClass":
                names.append(name)
    return names


def _profile(path: Path) -> None:
    """An association profile accepting any transfer syntax for storage (also as C-GET/C-MOVE sub-operations)."""
    syntaxes = STORESCP_CFG.read_text().split("[AnyTransferSyntax]", 1)[1].split("[[", 1)[0].strip()
    lines = ["[[TransferSyntaxes]]", "[Uncompressed]", "TransferSyntax1 = LocalEndianExplicit"]
    lines += ["TransferSyntax2 = OppositeEndianExplicit", "TransferSyntax3 = LittleEndianImplicit"]
    lines += ["[AnyTransferSyntax]", syntaxes, "[[PresentationContexts]]", "[Archive]"]
    contexts = [f"{n}\\AnyTransferSyntax" for n in _storage_contexts()[:110]]
    contexts += [
        "VerificationSOPClass\\Uncompressed",
        "FINDStudyRootQueryRetrieveInformationModel\\Uncompressed",
        "GETStudyRootQueryRetrieveInformationModel\\Uncompressed",
        "MOVEStudyRootQueryRetrieveInformationModel\\Uncompressed",
    ]
    lines += [f"PresentationContext{n} = {c}" for n, c in enumerate(contexts, 1)]
    # C-GET: the requestor (our SCU) is the storage SCP of the sub-operations
    lines += ["[[SCPSCURoleSelection]]", "[ArchiveRoles]"]
    lines += [f"Role{n} = {name}\\BOTH" for n, name in enumerate(_storage_contexts()[:110], 1)]
    lines += ["[[Profiles]]", "[Archive]", "PresentationContexts = Archive", "SCPSCURoleSelection = ArchiveRoles"]
    path.write_text("\n".join(lines) + "\n")


class Dcmqrscp(Service):
    """``with Dcmqrscp(folder) as pacs:`` starts dcmqrscp, waits until it answers, stops it on exit."""

    def __init__(self, folder: Path, compressed: bool = False, move_destinations: dict | None = None):
        self.folder = folder
        self.port = free_port()
        self.compressed = compressed
        self.move_destinations = move_destinations or {}  # AE title -> (host, port)
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{AE_TITLE}@127.0.0.1:{self.port}"

    def dimse_connection(self, **extra) -> str:
        """``AIRFLOW_CONN_*`` JSON of a ``dicom`` connection to this archive (extras added as given)."""
        fields = {"ae_title": AE_TITLE, "calling_ae_title": "CLAIMED", **extra}
        return json.dumps({"conn_type": "dicom", "host": "127.0.0.1", "port": self.port, "extra": fields})

    def start(self) -> Dcmqrscp:
        storage = self.folder / "db"
        storage.mkdir(parents=True, exist_ok=True)
        hosts = [f"{aet.lower()} = ({aet}, {host}, {port})" for aet, (host, port) in self.move_destinations.items()]
        config = [
            f"NetworkTCPPort = {self.port}",
            "MaxPDUSize = 16384",
            "MaxAssociations = 16",
            "HostTable BEGIN",
            *hosts,
            "HostTable END",
            "VendorTable BEGIN",
            "VendorTable END",
            "AETable BEGIN",
            f"{AE_TITLE} {storage} RW (500, 1024mb) ANY",
            "AETable END",
        ]
        path = self.folder / "dcmqrscp.cfg"
        path.write_text("\n".join(config) + "\n")
        command = [DCMQRSCP, "-c", str(path), "--disable-host-lookup", "-ll", "warn"]
        if self.compressed:
            _profile(self.folder / "profile.cfg")
            command += ["-xf", str(self.folder / "profile.cfg"), "Archive", "Archive"]
        self.launch(
            "dcmqrscp",
            command,
            lambda: socket.create_connection(("127.0.0.1", self.port), timeout=1).close(),
            cwd=self.folder,
        )
        return self

    def stored(self) -> list[Path]:
        """The files the archive holds."""
        return sorted(p for p in (self.folder / "db").iterdir() if p.is_file() and p.name != "index.dat")
