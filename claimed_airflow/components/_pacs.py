"""The components' side of PACS access: :mod:`claimed_airflow.pacs` with the Airflow hooks as connection readers.

Keeps the names the components use (``web_server``, ``dimse_server``, ``parse_source``, ``retrieve``,
``store_folder``, ...); the PACS code itself lives in :mod:`claimed_airflow.pacs`, which imports no hook,
so hooks and components both use it without an import circle.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.pacs import servers
from claimed_airflow.pacs.dicomweb import web_store
from claimed_airflow.pacs.dimse import dimse_store
from claimed_airflow.pacs.query import is_pacs_uri, make_query, parse_source
from claimed_airflow.pacs.servers import DimseServer, WebServer, redacted
from claimed_airflow.pacs.transfer import retrieve

__all__ = [
    "destination_server",
    "dimse_server",
    "is_pacs_uri",
    "make_query",
    "parse_source",
    "retrieve",
    "store_folder",
    "web_server",
]
log = logging.getLogger("claimed_airflow")


def _read_web(conn_id: str) -> WebServer:
    from claimed_airflow.hooks.dicomweb import DicomWebHook

    return DicomWebHook(conn_id).server()


def _read_dimse(conn_id: str) -> DimseServer:
    from claimed_airflow.hooks.dicom import DicomHook

    return DicomHook(conn_id).server()


def web_server(conn_id: str | None, url: str | None = None, verify: bool | None = None) -> WebServer:
    """:func:`claimed_airflow.pacs.servers.web_server` with the ``dicomweb`` connection read by its hook."""
    return servers.web_server(conn_id, url, verify, read=_read_web)


def dimse_server(conn_id: str | None, address: str | None = None, calling_ae_title: str | None = None) -> DimseServer:
    """:func:`claimed_airflow.pacs.servers.dimse_server` with the ``dicom`` connection read by its hook."""
    return servers.dimse_server(conn_id, address, calling_ae_title, read=_read_dimse)


def destination_server(destination: str) -> tuple[str, WebServer | DimseServer]:
    """``(protocol, server)`` of a destination URI: ``dicomweb://<conn>``, ``dicomweb+https://host/path``,
    ``dicom://<conn>`` or ``dicom://AET@host:port`` (a query part is not allowed here)."""
    if not is_pacs_uri(destination):
        raise ClaimedError(f"destination: {destination!r} is not a dicomweb://, dicomweb+http(s):// or dicom:// URI")
    if urlsplit(destination).query:
        raise ClaimedError(f"destination: {redacted(destination)} takes no query (filters are for sources)")
    protocol, conn_id, where, _, _ = parse_source(destination, "destination")
    if protocol == "dicomweb":
        return protocol, web_server(conn_id, where)
    return protocol, dimse_server(conn_id, where)


def store_folder(
    protocol: str,
    server: WebServer | DimseServer,
    folder: str | Path,
    batch: int = 20,
    max_rejected: int | None = None,
) -> list[dict]:
    """Store every DICOM file under ``folder`` (STOW-RS or C-STORE); one row per file with its outcome.

    Files that are not DICOM (``index.csv``, ...) are skipped; a file the server refuses is reported
    and the rest goes on; more than ``max_rejected`` files not stored, or none stored, is an error.
    The instances keep their SOP Instance UIDs, so storing the same results again replaces or keeps
    them on the PACS, it never duplicates.
    """
    import pydicom
    from pydicom.misc import is_dicom

    from claimed_airflow.core import reject

    base = Path(folder)
    candidates = sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".") and is_dicom(p))
    if not candidates:
        raise ClaimedError(f"dicom: no DICOM file in {folder}")
    uids, files = {}, []
    for path in candidates:
        try:
            uids[path] = str(
                pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID
            )
            files.append(path)
        except Exception as exc:  # noqa: BLE001 - this file is set aside, the rest is stored
            reject(path.relative_to(base).as_posix(), f"not a readable DICOM file ({type(exc).__name__}: {exc})")
    if protocol == "dicomweb":
        outcome = web_store(server, files, batch, [uids[p] for p in files])
    else:
        outcome = dimse_store(server, files)
    rows = []
    for path in files:
        result = outcome.get(uids[path], "not answered")
        name = path.relative_to(base).as_posix()
        if result != "stored":
            reject(name, f"{server.name} did not store {uids[path]}: {result}")
        rows.append({"file": name, "SOPInstanceUID": uids[path], "outcome": result})
    stored = sum(r["outcome"] == "stored" for r in rows)
    failed = len(rows) - stored + len(candidates) - len(files)
    if max_rejected is not None and failed > max_rejected:
        raise ClaimedError(f"max_rejected: {failed} file(s) not stored on {server.name}, more than {max_rejected}")
    if not stored:
        raise ClaimedError(f"dicom: {server.name} stored none of the {len(files)} file(s)")
    log.info("%s: stored %d of %d instance(s)", server.name, stored, len(files))
    return rows
