"""Search a PACS with QIDO-RS and retrieve the matching instances with WADO-RS (DICOMweb)."""

from __future__ import annotations

from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, component


@component("input")
def dicomweb(
    conn_id: str | None = "dicomweb_default",
    url: str | None = None,
    level: Literal["study", "series", "instance"] = "series",
    modality: str | None = None,
    body_part: str | None = None,
    study_date: str | None = None,
    accession_number: str | None = None,
    patient_id: str | None = None,
    filters: dict | None = None,
    max_instances: int | None = None,
    concurrency: int = 8,
    transfer_syntax: str = "*",
    verify: bool | None = None,
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
    """Search a PACS over DICOMweb (QIDO-RS) and retrieve the matching instances (WADO-RS) like input.dicom.

    The search runs at ``level`` (studies, series or instances matching the filters; then every
    instance of the matching studies or series); the instances are retrieved as stored (transfer
    syntax ``*``) with at most ``concurrency`` requests in flight, into the same ``metadata`` table
    and ``files`` folder as input.dicom (files named by a hash of the SOPInstanceUID; unreadable
    instances reported and left out). Instances fetched by a failed attempt are not fetched again
    on retry. The server and its credentials come from an Airflow connection of type ``dicomweb``
    (base URL, basic auth or bearer token, TLS verification); without one, from ``url`` and the
    ``DICOMWEB_TOKEN`` or ``DICOMWEB_USERNAME``/``DICOMWEB_PASSWORD`` environment variables.
    Connection errors and busy answers (429, 503, ...) are retried; errors name the server.

    :param conn_id: Airflow connection of type dicomweb; empty: url and DICOMWEB_* environment variables.
    :param url: Base URL of the DICOMweb service (e.g. http://pacs:8042/dicom-web); overrides the connection's.
    :param level: Where the filters apply: study, series or instance (body_part needs series or instance).
    :param modality: Modality, e.g. CR or MR (at study level: ModalitiesInStudy).
    :param body_part: BodyPartExamined, e.g. CHEST.
    :param study_date: StudyDate or a range, e.g. 20200101-20201231.
    :param accession_number: AccessionNumber.
    :param patient_id: PatientID.
    :param filters: Any other attributes, keyword (or 8-hex tag) to value, e.g. {"SeriesDescription": "PA*"}.
    :param max_instances: Retrieve at most this many instances (default: all that match).
    :param concurrency: Retrieve requests in flight at once.
    :param transfer_syntax: Transfer syntax asked for: * (as stored, no transcoding) or a UID.
    :param verify: TLS certificate verification; default the connection's.
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
    server = _pacs.web_server(conn_id, url, verify)
    return read_pacs(
        "dicomweb",
        server,
        query,
        labels,
        label_key,
        label_column,
        max_rejected,
        metadata,
        files,
        concurrency,
        transfer_syntax,
        shards=shards,
        shard_tables=shard_tables,
        shard_bytes=limit,
    )
