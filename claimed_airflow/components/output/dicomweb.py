"""Store DICOM files (SR, Secondary Capture, de-identified images) in a PACS with STOW-RS (DICOMweb)."""

from __future__ import annotations

from claimed_airflow.core import InputPath, OutputPath, component


@component("output")
def dicomweb(
    dicom: InputPath,
    conn_id: str | None = "dicomweb_default",
    url: str | None = None,
    verify: bool | None = None,
    batch_size: int = 20,
    max_rejected: int | None = None,
    stored: OutputPath = "stored.csv",
) -> dict:
    """Store a folder of DICOM files in a PACS over DICOMweb (STOW-RS), e.g. the SR or SC of output.dicom.

    Every DICOM file under ``dicom`` (``index.csv`` and other files are skipped) is sent in batches
    of ``batch_size``. The instances keep their SOP Instance UIDs (output.dicom derives them from the
    source and the model), so storing the same results again does not duplicate them: the PACS
    replaces or keeps the one it has. A file the PACS refuses is reported and the rest goes on.
    The server and its credentials come from an Airflow connection of type ``dicomweb``; without
    one, from ``url`` and the ``DICOMWEB_*`` environment variables (see input.dicomweb).

    :param dicom: Folder of DICOM files (``dicom`` of output.dicom, ``output`` of transform.deidentify, ...).
    :param conn_id: Airflow connection of type dicomweb; empty: url and DICOMWEB_* environment variables.
    :param url: Base URL of the DICOMweb service; overrides the connection's.
    :param verify: TLS certificate verification; default the connection's.
    :param batch_size: Instances per STOW-RS request.
    :param max_rejected: Fail the task when more files than this are not stored (default: never, unless all).
    :param stored: CSV table: file, SOPInstanceUID, outcome (stored or the PACS's failure reason).
    """
    from claimed_airflow.components import _pacs

    return _store("dicomweb", _pacs.web_server(conn_id, url, verify), dicom, stored, batch_size, max_rejected)


def _store(
    protocol: str, server, dicom: str, stored: str, batch_size: int = 20, max_rejected: int | None = None
) -> dict:
    import pandas as pd

    from claimed_airflow.components import _pacs
    from claimed_airflow.core.errors import ClaimedError
    from claimed_airflow.core.tables import write_table

    if batch_size < 1:
        raise ClaimedError(f"batch_size: must be positive, got {batch_size}")
    rows = _pacs.store_folder(protocol, server, dicom, batch_size, max_rejected)
    write_table(pd.DataFrame(rows), stored)
    count = sum(r["outcome"] == "stored" for r in rows)
    return {"instances_stored": count, "instances_failed": len(rows) - count, "server": server.name}
