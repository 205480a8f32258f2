"""Store DICOM files in a PACS with C-STORE (DICOM networking, DIMSE)."""

from __future__ import annotations

from claimed_airflow.core import InputPath, OutputPath, component


@component("output")
def dicom_network(
    dicom: InputPath,
    conn_id: str | None = "dicom_default",
    address: str | None = None,
    calling_ae_title: str | None = None,
    stored: OutputPath = "stored.csv",
) -> dict:
    """Store a folder of DICOM files in a PACS without DICOMweb (C-STORE over one association).

    The DIMSE twin of output.dicomweb: every DICOM file under ``dicom`` is sent in its own transfer
    syntax; the instances keep their SOP Instance UIDs, so a second store does not duplicate them.
    The peer comes from an Airflow connection of type ``dicom`` or from ``address`` (``AET@host:port``).

    :param dicom: Folder of DICOM files (``dicom`` of output.dicom, ``output`` of transform.deidentify, ...).
    :param conn_id: Airflow connection of type dicom.
    :param address: The PACS as AET@host:port instead of a connection.
    :param calling_ae_title: Our AE title; default the connection's, else CLAIMED.
    :param stored: CSV table: file, SOPInstanceUID, outcome (stored or the C-STORE failure status).
    """
    from claimed_airflow.components import _pacs
    from claimed_airflow.components.output.dicomweb import _store

    return _store("dicom", _pacs.dimse_server(conn_id, address, calling_ae_title), dicom, stored)
