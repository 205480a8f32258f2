"""Search a PACS with C-FIND and retrieve the matching instances with C-GET (DICOM networking, DIMSE)."""

from __future__ import annotations

from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, component


@component("input")
def dicom_network(
    conn_id: str | None = "dicom_default",
    address: str | None = None,
    calling_ae_title: str | None = None,
    level: Literal["study", "series", "instance"] = "series",
    modality: str | None = None,
    body_part: str | None = None,
    study_date: str | None = None,
    accession_number: str | None = None,
    patient_id: str | None = None,
    filters: dict | None = None,
    max_instances: int | None = None,
    labels: InputPath | None = None,
    label_key: str = "SOPInstanceUID",
    label_column: str = "label",
    max_rejected: int | None = None,
    shards: int = 1,
    shard_bytes: str | None = None,
    metadata: OutputPath = "metadata.parquet",
    files: OutputPath = "files",
    shard_tables: OutputPath = "shards",
) -> dict:
    """Search a PACS without DICOMweb (C-FIND, Study Root) and retrieve the instances (C-GET) like input.dicom.

    For a PACS that speaks only DIMSE. C-FIND runs at ``level`` with the filters, then lists the
    instances of each matching study or series; C-GET fetches them series by series over one
    association, offering each SOP class in every common transfer syntax so that files arrive as
    stored. Outputs, file names, reporting of unreadable instances and resuming after a failed
    attempt are those of input.dicomweb. The peer comes from an Airflow connection of type
    ``dicom`` (PACS AE title, host, port, our calling AE title) or from ``address``
    (``AET@host:port``); the PACS must accept our calling AE title.

    :param conn_id: Airflow connection of type dicom.
    :param address: The PACS as AET@host:port (e.g. ORTHANC@pacs:4242) instead of a connection.
    :param calling_ae_title: Our AE title; default the connection's, else CLAIMED.
    :param level: Where the filters apply: study, series or instance (body_part needs series or instance).
    :param modality: Modality, e.g. CR or MR (at study level: ModalitiesInStudy).
    :param body_part: BodyPartExamined, e.g. CHEST.
    :param study_date: StudyDate or a range, e.g. 20200101-20201231.
    :param accession_number: AccessionNumber.
    :param patient_id: PatientID.
    :param filters: Any other attributes, keyword (or 8-hex tag) to value, e.g. {"SeriesDescription": "PA*"}.
    :param max_instances: Retrieve at most this many instances (default: all that match).
    :param labels: Optional CSV/Parquet table with labels, joined to the metadata on ``label_key``.
    :param label_key: Column present in both the metadata and the labels table (e.g. SOPInstanceUID, AccessionNumber).
    :param label_column: Column of the labels table copied into the metadata as ``label``.
    :param max_rejected: Fail the task when more instances than this are set aside (default: never, unless all).
    :param shards: Cut the retrieved instances into this many shards by count (see input.dicom).
    :param shard_bytes: Cut them instead into shards of at most this many bytes, e.g. 512MB (see input.dicom).
    :param metadata: Parquet table: file, tags (PatientSex, PatientAge in years, Modality, ...), label.
    :param files: Folder with the retrieved DICOM files, named as in the ``file`` column.
    :param shard_tables: Folder of shard tables ``shard-NNNNN.parquet``, one per shard: the metadata rows of its
        files, column ``file`` first.
    """
    from claimed_airflow.components import _pacs
    from claimed_airflow.components.input.dicom import read_pacs
    from claimed_airflow.core.sharding import check_cut

    limit = check_cut(shards, shard_bytes)
    query = _pacs.make_query(
        level, modality, body_part, study_date, accession_number, patient_id, filters, max_instances
    )
    server = _pacs.dimse_server(conn_id, address, calling_ae_title)
    return read_pacs(
        "dicom",
        server,
        query,
        labels,
        label_key,
        label_column,
        max_rejected,
        metadata,
        files,
        shards=shards,
        shard_tables=shard_tables,
        shard_bytes=limit,
    )
