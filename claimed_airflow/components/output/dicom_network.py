"""Store DICOM files in a PACS with C-STORE (DICOM networking, DIMSE)."""

from __future__ import annotations

from claimed_airflow.core import InputPath, OutputPath, component


@component("output")
def dicom_network(
    dicom: InputPath,
    conn_id: str | None = "dicom_default",
    address: str | None = None,
    calling_ae_title: str | None = None,
    max_rejected: int | None = None,
    stored: OutputPath = "stored.csv",
) -> dict:
    """Store a folder of DICOM files in a PACS without DICOMweb (C-STORE over one association).

    The DIMSE twin of output.dicomweb. Each SOP class is proposed in the files' own transfer syntaxes
    and in the uncompressed ones; a file goes as it is where the PACS accepted its syntax, else
    decompressed (pydicom's JPEG, JPEG-LS, JPEG 2000 and RLE decoders) to an uncompressed one. A file
    the PACS takes neither way, or refuses, gets its reason in ``stored`` and the rest goes on. The
    instances keep their SOP Instance UIDs, so a second store does not duplicate them. The peer
    comes from an Airflow connection of type ``dicom`` or from ``address`` (``AET@host:port``).

    :param dicom: Folder of DICOM files (``dicom`` of output.dicom, ``output`` of transform.deidentify, ...).
    :param conn_id: Airflow connection of type dicom.
    :param address: The PACS as AET@host:port instead of a connection.
    :param calling_ae_title: Our AE title; default the connection's, else CLAIMED.
    :param max_rejected: Fail the task when more files than this are not stored (default: never, unless all).
    :param stored: CSV table: file, SOPInstanceUID, outcome (stored or the C-STORE failure status).
    """
    from claimed_airflow.components import _pacs
    from claimed_airflow.components.output.dicomweb import _store

    server = _pacs.dimse_server(conn_id, address, calling_ae_title)
    return _store("dicom", server, dicom, stored, max_rejected=max_rejected)
