"""Input operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class ClimateCopernicusInputOperator(ClaimedOperator):
    """Download climate data (e.g. ERA5) from the Copernicus Climate Data Store with the cdsapi client.

    Builds a CDS request from dataset, variables, date, times and area, waits for the job, and
    writes the NetCDF file and a flat table (one row per time and grid point, one column per
    variable). Credentials come from the Airflow connection ``conn_id`` (host = API URL, password =
    API key); without one, from ``$CDSAPI_URL``/``$CDSAPI_KEY`` or ``~/.cdsapirc`` as cdsapi reads
    them. The key never appears in logs, XCom or the run manifest.

    Runs the ``input.climate_copernicus`` component. Outputs (XCom keys): netcdf, table.

    :param dataset: CDS dataset id, e.g. reanalysis-era5-single-levels.
    :type dataset: str
    :param variables: Variables to download, e.g. 2m_temperature, total_precipitation.
    :type variables: list[str]
    :param date: Date or range, e.g. 2024-01-01 or 2024-01-01/2024-01-31.
    :type date: str
    :param times: Hours of the day, e.g. 00:00, 12:00 (default: what the dataset serves).
    :type times: list[str] | None
    :param area: Bounding box as north, west, south, east in degrees (default: the whole globe).
    :type area: list[float] | None
    :param product_type: CDS product type (e.g. reanalysis); empty for datasets without one.
    :type product_type: str | None
    :param extra: More request keys merged into the request (e.g. pressure_level), as a JSON object.
    :type extra: dict | None
    :param conn_id: Airflow connection of type copernicus holding the API URL and key; empty to use
        the cdsapi configuration ($CDSAPI_URL/$CDSAPI_KEY or ~/.cdsapirc).
    :type conn_id: str | None
    :param url: API URL overriding the connection's (e.g. the Atmosphere Data Store).
    :type url: str | None
    :param http_retries: Tries of each HTTP call before giving up.
    :type http_retries: int
    """

    component = "input.climate_copernicus"
    component_fields = (
        "dataset",
        "variables",
        "date",
        "times",
        "area",
        "product_type",
        "extra",
        "conn_id",
        "url",
        "http_retries",
    )
    ui_color = "#e3f2fd"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        dataset: str,
        variables: list[str],
        date: str,
        times: list[str] | None = None,
        area: list[float] | None = None,
        product_type: str | None = "reanalysis",
        extra: dict | None = None,
        conn_id: str | None = "copernicus_default",
        url: str | None = None,
        http_retries: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.variables = variables
        self.date = date
        self.times = times
        self.area = area
        self.product_type = product_type
        self.extra = extra
        self.conn_id = conn_id
        self.url = url
        self.http_retries = http_retries


class CovidChestXrayInputOperator(ClaimedOperator):
    """Read the COVID-19 chest X-ray collection (metadata.csv + images/) and sort its images by finding.

    The source is the layout of ieee8023/covid-chestxray-dataset: a ``metadata.csv`` (patientid,
    sex, age, finding, view, modality, folder, filename, ...) beside the image folder. It may be a
    local folder, a ``file://``, ``http(s)://`` or ``s3://`` URI of that folder or of a
    .zip/.tar(.gz) archive of it. Rows are filtered by view, modality and finding; the images are
    copied to ``images/<label>/`` and the metadata gets ``label`` and ``image`` (the path under
    ``images``), ready for ``input.images_to_dicom`` (``filename_column="image"``) or training. Rows
    whose image is missing, or whose ``folder``/``filename`` leads out of the dataset (``..``, an
    absolute path, a symbolic link pointing elsewhere), are reported and left out. Downloads and
    archives are unpacked in a temporary folder that is removed afterwards, failure included; an
    archive larger than the limits below, or with a member outside its root or a link, is refused.

    Runs the ``input.covid_chestxray`` component. Outputs (XCom keys): metadata, images.

    :param source: Folder, archive or URI (file://, http(s)://, s3://) of the dataset layout.
    :type source: str
    :param views: Keep these views only (e.g. PA, AP, "AP Supine"); empty keeps all.
    :type views: list[str] | None
    :param modalities: Keep these modalities only (e.g. X-ray, CT); empty keeps all.
    :type modalities: list[str] | None
    :param findings: Keep rows whose finding (or one of its ``/``-separated parts, e.g. COVID-19 in
        Pneumonia/Viral/COVID-19) is one of these; it becomes the label. Empty keeps all, labelled
        by the last part of the finding.
    :type findings: list[str] | None
    :param timeout: Seconds to wait for a remote source.
    :type timeout: float
    :param max_archive_bytes: Most bytes a download and its unpacked archive may take (default 8
        GiB).
    :type max_archive_bytes: int
    :param max_archive_members: Most files and folders an archive may have (default 100,000).
    :type max_archive_members: int
    """

    component = "input.covid_chestxray"
    component_fields = (
        "source",
        "views",
        "modalities",
        "findings",
        "timeout",
        "max_archive_bytes",
        "max_archive_members",
    )
    ui_color = "#e3f2fd"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        source: str,
        views: list[str] | None = None,
        modalities: list[str] | None = None,
        findings: list[str] | None = None,
        timeout: float = 60.0,
        max_archive_bytes: int = 8589934592,
        max_archive_members: int = 100000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.views = views
        self.modalities = modalities
        self.findings = findings
        self.timeout = timeout
        self.max_archive_bytes = max_archive_bytes
        self.max_archive_members = max_archive_members


class DicomInputOperator(ClaimedOperator):
    """Read DICOM files into a metadata table (one row per SOP instance) plus a folder of the readable files.

    Sources: a local folder (searched recursively), a glob, an ``s3://`` (or other fsspec) prefix
    staged by the runner, a DICOMDIR (its referenced files) or a single file. Files are recognised
    by the ``DICM`` magic after the 128-byte preamble, not by their suffix. Each row carries file,
    StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, SOPClassUID, Modality, BodyPartExamined,
    PatientSex, PatientAge (years), Rows, Columns, PhotometricInterpretation, TransferSyntaxUID,
    NumberOfFrames, HasPixelData, BurnedInAnnotation and, with a labels table, ``label``. Files that
    are not readable DICOM and repeated SOPInstanceUIDs (the first file is kept) are reported by
    name, listed in the run manifest and left out; the rest of the batch goes on. A PACS query is a
    source too: ``dicomweb://<connection>?modality=CR&study_date=20200101-20201231`` (DICOMweb:
    QIDO-RS search, WADO-RS retrieve), ``dicomweb+https://host/dicom-web?...`` (no connection) or
    ``dicom://<connection>?...`` (DIMSE: C-FIND, C-GET); see input.dicomweb. Files from a PACS are
    named by a hash of their SOPInstanceUID. ``shards``: the readable files, in the table's order,
    are cut into that many shards by count, or with ``shard_bytes`` into contiguous shards of at
    most that many bytes (``shard_tables``; the returned ``shard_index`` is the list a DAG expands a
    data-parallel component over, see ``transform.merge_shards``). The same input gives the same
    shards.

    Runs the ``input.dicom`` component. Outputs (XCom keys): metadata, files, shard_tables.

    :param source: Folder (searched recursively), glob pattern, URI prefix, DICOMDIR, single DICOM
        file, or a PACS query URI (dicomweb://, dicom://).
    :type source: str
    :param labels: Optional CSV/Parquet table with labels, joined to the metadata on ``label_key``.
    :type labels: str | None
    :param label_key: Column present in both the metadata and the labels table (e.g. file,
        SOPInstanceUID).
    :type label_key: str
    :param label_column: Column of the labels table copied into the metadata as ``label``.
    :type label_column: str
    :param extra_sources: More sources read into the same table and folder (retraining on the
        union): ``[{"source": ..., "labels": ..., "label_key": "SOPInstanceUID"}]``; their files go
        to ``_extra/<n>/``, each row's ``source`` column is its source's number (0: ``source``); a
        SOPInstanceUID already read is a duplicate.
    :type extra_sources: list[dict] | None
    :param duplicates: A file whose SOPInstanceUID was already seen: ``reject`` sets it aside (the
        first file is kept), ``keep`` keeps it with a warning (e.g. one instance in several transfer
        syntaxes).
    :type duplicates: str
    :param max_rejected: Fail the task when more files than this are set aside (default: never,
        unless all).
    :type max_rejected: int | None
    :param shards: Cut the readable files into this many shards by count (1: one shard, all files).
    :type shards: int
    :param shard_bytes: Cut them instead into shards of at most this many bytes of files, e.g. 512MB
        or 2GiB (a larger file is a shard alone; the number of shards follows from the data). Not
        with ``shards``.
    :type shard_bytes: str | None
    """

    component = "input.dicom"
    component_fields = (
        "source",
        "labels",
        "label_key",
        "label_column",
        "extra_sources",
        "duplicates",
        "max_rejected",
        "shards",
        "shard_bytes",
    )
    ui_color = "#e3f2fd"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        source: str,
        labels: str | None = None,
        label_key: str = "file",
        label_column: str = "label",
        extra_sources: list[dict] | None = None,
        duplicates: str = "reject",
        max_rejected: int | None = None,
        shards: int = 1,
        shard_bytes: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.labels = labels
        self.label_key = label_key
        self.label_column = label_column
        self.extra_sources = extra_sources
        self.duplicates = duplicates
        self.max_rejected = max_rejected
        self.shards = shards
        self.shard_bytes = shard_bytes


class DicomListingInputOperator(ClaimedOperator):
    """List a folder of DICOM files into shard tables without opening a file: the first step of a sharded read.

    A local folder is searched recursively (hidden files and DICOMDIRs skipped, as ``input.dicom``
    does), an ``s3://`` (or other fsspec) prefix is listed on the object store: nothing is
    downloaded. The files, in the order ``input.dicom`` reads them, are cut into ``shards`` shards
    by count or into shards of at most ``shard_bytes`` bytes; the same folder gives the same shards.
    The names are relative to ``source`` (``input.dicom_shard``'s ``files``). Returns
    ``shard_index``, the list to expand over.

    Runs the ``input.dicom_listing`` component. Outputs (XCom keys): shard_tables.

    :param source: Folder or object-store prefix holding the DICOM files (a PACS query or a glob:
        use input.dicom).
    :type source: str
    :param shards: Cut the files into this many shards by count.
    :type shards: int
    :param shard_bytes: Cut them instead into shards of at most this many bytes, e.g. 512MB or 2GiB
        (a larger file is a shard alone). Not with ``shards``.
    :type shard_bytes: str | None
    """

    component = "input.dicom_listing"
    component_fields = ("source", "shards", "shard_bytes")
    ui_color = "#e3f2fd"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        source: str,
        shards: int = 1,
        shard_bytes: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.shards = shards
        self.shard_bytes = shard_bytes


class DicomMergeInputOperator(ClaimedOperator):
    """Join the shards ``input.dicom_shard`` read into what ``input.dicom`` writes for the whole folder.

    The tables are concatenated in shard order (one row group in memory) and the shards' folders
    linked into one (copied across file systems). A SOPInstanceUID already met in an earlier shard
    is reported and set aside with its file (``duplicates=reject``, the first file kept), as one
    task would; the UIDs met are held as 16-byte digests with their shard's number (20 bytes a UID).
    Shard table ``i`` holds the rows kept of shard ``i``, column ``file`` first: the data-parallel
    steps downstream expand over the returned ``shard_index``.

    Runs the ``input.dicom_merge`` component. Outputs (XCom keys): metadata, files, shard_tables.

    :param metadata_parts: URIs of the shards' ``metadata`` tables, in shard order.
    :type metadata_parts: list[str]
    :param files_parts: URIs of the shards' ``instances`` folders, in the same order.
    :type files_parts: list[str]
    :param duplicates: A SOPInstanceUID of an earlier shard: ``reject`` sets the file aside,
        ``keep`` keeps it.
    :type duplicates: str
    :param max_rejected: Fail when more files than this are set aside here.
    :type max_rejected: int | None
    """

    component = "input.dicom_merge"
    component_fields = ("metadata_parts", "files_parts", "duplicates", "max_rejected")
    ui_color = "#e3f2fd"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        metadata_parts: list[str],
        files_parts: list[str],
        duplicates: str = "reject",
        max_rejected: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metadata_parts = metadata_parts
        self.files_parts = files_parts
        self.duplicates = duplicates
        self.max_rejected = max_rejected


class DicomNetworkInputOperator(ClaimedOperator):
    """Search a PACS without DICOMweb (C-FIND, Study Root) and retrieve the instances (C-GET) like input.dicom.

    For a PACS that speaks only DIMSE. C-FIND runs at ``level`` with the filters, then lists the
    instances of each matching study or series; C-GET fetches them series by series over one
    association, offering each SOP class in every common transfer syntax so that files arrive as
    stored. Outputs, file names, reporting of unreadable instances and resuming after a failed
    attempt are those of input.dicomweb. The peer comes from an Airflow connection of type ``dicom``
    (PACS AE title, host, port, our calling AE title) or from ``address`` (``AET@host:port``); the
    PACS must accept our calling AE title.

    Runs the ``input.dicom_network`` component. Outputs (XCom keys): metadata, files, shard_tables.

    :param conn_id: Airflow connection of type dicom.
    :type conn_id: str | None
    :param address: The PACS as AET@host:port (e.g. ORTHANC@pacs:4242) instead of a connection.
    :type address: str | None
    :param calling_ae_title: Our AE title; default the connection's, else CLAIMED.
    :type calling_ae_title: str | None
    :param level: Where the filters apply: study, series or instance (body_part needs series or
        instance).
    :type level: str
    :param modality: Modality, e.g. CR or MR (at study level: ModalitiesInStudy).
    :type modality: str | None
    :param body_part: BodyPartExamined, e.g. CHEST.
    :type body_part: str | None
    :param study_date: StudyDate or a range, e.g. 20200101-20201231.
    :type study_date: str | None
    :param accession_number: AccessionNumber.
    :type accession_number: str | None
    :param patient_id: PatientID.
    :type patient_id: str | None
    :param filters: Any other attributes, keyword (or 8-hex tag) to value, e.g.
        {"SeriesDescription": "PA*"}.
    :type filters: dict | None
    :param max_instances: Retrieve at most this many instances (default: all that match).
    :type max_instances: int | None
    :param labels: Optional CSV/Parquet table with labels, joined to the metadata on ``label_key``.
    :type labels: str | None
    :param label_key: Column present in both the metadata and the labels table (e.g. SOPInstanceUID,
        AccessionNumber).
    :type label_key: str
    :param label_column: Column of the labels table copied into the metadata as ``label``.
    :type label_column: str
    :param max_rejected: Fail the task when more instances than this are set aside (default: never,
        unless all).
    :type max_rejected: int | None
    :param shards: Cut the retrieved instances into this many shards by count (see input.dicom).
    :type shards: int
    :param shard_bytes: Cut them instead into shards of at most this many bytes, e.g. 512MB (see
        input.dicom).
    :type shard_bytes: str | None
    """

    component = "input.dicom_network"
    component_fields = (
        "conn_id",
        "address",
        "calling_ae_title",
        "level",
        "modality",
        "body_part",
        "study_date",
        "accession_number",
        "patient_id",
        "filters",
        "max_instances",
        "labels",
        "label_key",
        "label_column",
        "max_rejected",
        "shards",
        "shard_bytes",
    )
    ui_color = "#e3f2fd"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        conn_id: str | None = "dicom_default",
        address: str | None = None,
        calling_ae_title: str | None = None,
        level: str = "series",
        modality: str | None = None,
        body_part: str | None = None,
        study_date: str | None = None,
        accession_number: str | None = None,
        patient_id: str | None = None,
        filters: dict | None = None,
        max_instances: int | None = None,
        labels: str | None = None,
        label_key: str = "SOPInstanceUID",
        label_column: str = "label",
        max_rejected: int | None = None,
        shards: int = 1,
        shard_bytes: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.address = address
        self.calling_ae_title = calling_ae_title
        self.level = level
        self.modality = modality
        self.body_part = body_part
        self.study_date = study_date
        self.accession_number = accession_number
        self.patient_id = patient_id
        self.filters = filters
        self.max_instances = max_instances
        self.labels = labels
        self.label_key = label_key
        self.label_column = label_column
        self.max_rejected = max_rejected
        self.shards = shards
        self.shard_bytes = shard_bytes


class DicomShardInputOperator(ClaimedOperator):
    """Read one shard of a listed folder as ``input.dicom`` reads a source: a metadata row per readable file.

    Only the shard's files are staged (from an object store: downloaded) and read; unreadable files
    and a SOPInstanceUID repeated within the shard are reported and set aside. A shard without a
    readable file writes an empty table (``input.dicom_merge`` fails only when every shard is
    empty). Without ``shard_index`` one task reads every shard, one after another.

    Runs the ``input.dicom_shard`` component. Outputs (XCom keys): metadata, instances.

    :param files: The folder ``input.dicom_listing`` listed (its ``source``).
    :type files: str
    :param shard_tables: ``input.dicom_listing``'s shard tables.
    :type shard_tables: str
    :param shard_index: The shard to read (absent: every shard).
    :type shard_index: int | None
    :param labels: Optional CSV/Parquet table with labels, joined to the metadata on ``label_key``.
    :type labels: str | None
    :param label_key: Column present in both the metadata and the labels table (e.g. file,
        SOPInstanceUID).
    :type label_key: str
    :param label_column: Column of the labels table copied into the metadata as ``label``.
    :type label_column: str
    :param duplicates: A SOPInstanceUID met again: ``reject`` sets the later file aside, ``keep``
        keeps it.
    :type duplicates: str
    :param max_rejected: Fail the task when more files than this are set aside in the shard.
    :type max_rejected: int | None
    """

    component = "input.dicom_shard"
    component_fields = (
        "files",
        "shard_tables",
        "shard_index",
        "labels",
        "label_key",
        "label_column",
        "duplicates",
        "max_rejected",
    )
    ui_color = "#e3f2fd"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        files: str,
        shard_tables: str,
        shard_index: int | None = None,
        labels: str | None = None,
        label_key: str = "file",
        label_column: str = "label",
        duplicates: str = "reject",
        max_rejected: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.files = files
        self.shard_tables = shard_tables
        self.shard_index = shard_index
        self.labels = labels
        self.label_key = label_key
        self.label_column = label_column
        self.duplicates = duplicates
        self.max_rejected = max_rejected


class DicomwebInputOperator(ClaimedOperator):
    """Search a PACS over DICOMweb (QIDO-RS) and retrieve the matching instances (WADO-RS) like input.dicom.

    The search runs at ``level`` (studies, series or instances matching the filters; then every
    instance of the matching studies or series); the instances are retrieved as stored (transfer
    syntax ``*``) with at most ``concurrency`` requests in flight, into the same ``metadata`` table
    and ``files`` folder as input.dicom (files named by a hash of the SOPInstanceUID; unreadable
    instances reported and left out). Instances fetched by a failed attempt are not fetched again on
    retry. The server and its credentials come from an Airflow connection of type ``dicomweb`` (base
    URL, basic auth or bearer token, TLS verification); without one, from ``url`` and the
    ``DICOMWEB_TOKEN`` or ``DICOMWEB_USERNAME``/``DICOMWEB_PASSWORD`` environment variables.
    Connection errors and busy answers (429, 503, ...) are retried; errors name the server.

    Runs the ``input.dicomweb`` component. Outputs (XCom keys): metadata, files, shard_tables.

    :param conn_id: Airflow connection of type dicomweb; empty: url and DICOMWEB_* environment
        variables.
    :type conn_id: str | None
    :param url: Base URL of the DICOMweb service (e.g. http://pacs:8042/dicom-web); overrides the
        connection's.
    :type url: str | None
    :param level: Where the filters apply: study, series or instance (body_part needs series or
        instance).
    :type level: str
    :param modality: Modality, e.g. CR or MR (at study level: ModalitiesInStudy).
    :type modality: str | None
    :param body_part: BodyPartExamined, e.g. CHEST.
    :type body_part: str | None
    :param study_date: StudyDate or a range, e.g. 20200101-20201231.
    :type study_date: str | None
    :param accession_number: AccessionNumber.
    :type accession_number: str | None
    :param patient_id: PatientID.
    :type patient_id: str | None
    :param filters: Any other attributes, keyword (or 8-hex tag) to value, e.g.
        {"SeriesDescription": "PA*"}.
    :type filters: dict | None
    :param max_instances: Retrieve at most this many instances (default: all that match).
    :type max_instances: int | None
    :param concurrency: Retrieve requests in flight at once.
    :type concurrency: int
    :param transfer_syntax: Transfer syntax asked for: * (as stored, no transcoding) or a UID.
    :type transfer_syntax: str
    :param verify: TLS certificate verification; default the connection's.
    :type verify: bool | None
    :param labels: Optional CSV/Parquet table with labels, joined to the metadata on ``label_key``.
    :type labels: str | None
    :param label_key: Column present in both the metadata and the labels table (e.g. SOPInstanceUID,
        AccessionNumber).
    :type label_key: str
    :param label_column: Column of the labels table copied into the metadata as ``label``.
    :type label_column: str
    :param max_rejected: Fail the task when more instances than this are set aside (default: never,
        unless all).
    :type max_rejected: int | None
    :param shards: Cut the retrieved instances into this many shards by count (see input.dicom).
    :type shards: int
    :param shard_bytes: Cut them instead into shards of at most this many bytes, e.g. 512MB (see
        input.dicom).
    :type shard_bytes: str | None
    """

    component = "input.dicomweb"
    component_fields = (
        "conn_id",
        "url",
        "level",
        "modality",
        "body_part",
        "study_date",
        "accession_number",
        "patient_id",
        "filters",
        "max_instances",
        "concurrency",
        "transfer_syntax",
        "verify",
        "labels",
        "label_key",
        "label_column",
        "max_rejected",
        "shards",
        "shard_bytes",
    )
    ui_color = "#e3f2fd"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        conn_id: str | None = "dicomweb_default",
        url: str | None = None,
        level: str = "series",
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
        labels: str | None = None,
        label_key: str = "SOPInstanceUID",
        label_column: str = "label",
        max_rejected: int | None = None,
        shards: int = 1,
        shard_bytes: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.url = url
        self.level = level
        self.modality = modality
        self.body_part = body_part
        self.study_date = study_date
        self.accession_number = accession_number
        self.patient_id = patient_id
        self.filters = filters
        self.max_instances = max_instances
        self.concurrency = concurrency
        self.transfer_syntax = transfer_syntax
        self.verify = verify
        self.labels = labels
        self.label_key = label_key
        self.label_column = label_column
        self.max_rejected = max_rejected
        self.shards = shards
        self.shard_bytes = shard_bytes


class GermanCreditInputOperator(ClaimedOperator):
    """Read ``german.data`` (UCI Statlog German Credit) into a table with AIF360's conventions.

    Columns are named as in ``german.doc``; ``sex`` is derived from ``personal_status`` (A91, A93,
    A94 male; A92, A95 female) as AIF360's GermanDataset does; ``credit`` is 1 for good and 0 for
    bad credit (the favorable label is 1). ``age`` stays numeric so that any age threshold can be
    used.

    Runs the ``input.german_credit`` component. Outputs (XCom keys): table.

    :param source: The ``german.data`` file (1000 rows, 21 space-separated fields).
    :type source: str
    """

    component = "input.german_credit"
    component_fields = ("source",)
    ui_color = "#e3f2fd"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        source: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source


class ImagesToDicomInputOperator(ClaimedOperator):
    """Convert PNG/JPEG images listed in a labels table into DICOM Secondary Capture files.

    Each image becomes an 8-bit MONOCHROME2 file with PatientSex, PatientAge and deterministic UIDs
    (derived from the image content, so the same input gives the same dataset). Rows whose image is
    missing or unreadable, or whose file name leads out of ``images`` (``..``, an absolute path, a
    symbolic link), are reported and left out, as is a second row giving an already written name.

    Runs the ``input.images_to_dicom`` component. Outputs (XCom keys): dicom, index.

    :param images: Folder with the image files.
    :type images: str
    :param labels: CSV table with one row per image.
    :type labels: str
    :param filename_column: Column of ``labels`` with the image file name.
    :type filename_column: str
    :param label_column: Column of ``labels`` with the class label (written to the index as
        ``label``).
    :type label_column: str
    :param sex_column: Column with the patient sex (M/F/O); empty values are left out.
    :type sex_column: str
    :param age_column: Column with the patient age in years; empty values are left out.
    :type age_column: str
    :param modality: DICOM Modality of the created files (OT, CR, DX, ...).
    :type modality: str
    :param max_size: Longest side in pixels; larger images are scaled down keeping the aspect ratio.
    :type max_size: int
    :param burned_in_annotation: BurnedInAnnotation of the files: NO (this conversion adds no text;
        the default) or YES when the images themselves may show identifying text
        (``transform.deidentify`` then sets them aside unless told to keep them).
    :type burned_in_annotation: str
    """

    component = "input.images_to_dicom"
    component_fields = (
        "images",
        "labels",
        "filename_column",
        "label_column",
        "sex_column",
        "age_column",
        "modality",
        "max_size",
        "burned_in_annotation",
    )
    ui_color = "#e3f2fd"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        images: str,
        labels: str,
        filename_column: str = "filename",
        label_column: str = "finding",
        sex_column: str = "sex",
        age_column: str = "age",
        modality: str = "OT",
        max_size: int = 512,
        burned_in_annotation: str = "NO",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.images = images
        self.labels = labels
        self.filename_column = filename_column
        self.label_column = label_column
        self.sex_column = sex_column
        self.age_column = age_column
        self.modality = modality
        self.max_size = max_size
        self.burned_in_annotation = burned_in_annotation


class LabelsInputOperator(ClaimedOperator):
    """Read radiologists' labels from a labelling tool's export into the labels table of input.dicom.

    Exports: IBM Cloud Annotations' ``_annotations.json`` (a classification project: ``annotations``
    maps each image name to ``[{"label": ...}]``), a Label Studio JSON export (a list of tasks; the
    single choice of each task's annotations, the one marked ground truth if any, cancelled ones
    left out; the image is the task's ``data.SOPInstanceUID``, ``data.file`` or the file named by
    ``data.image``, as output.label_studio_tasks writes them) or a CSV (``label_column`` and one of
    SOPInstanceUID, file, image). ``auto`` tells them by suffix (``.csv``) and JSON shape. Image
    names (files, PNG names) are looked up in ``metadata``: its ``file``, ``image``, their base
    names and the PNG name transform.dicom_to_images gives each file. Images without a label are
    left out; the same label twice is kept once. A malformed entry, an unknown image (with
    ``metadata``), a label outside letters, digits, space and ``_ . + -`` (labels become folder
    names), or two labels for one image fail the task with one line naming the file and the entry.

    Runs the ``input.labels`` component. Outputs (XCom keys): labels.

    :param source: The export: ``_annotations.json``, Label Studio JSON export or CSV.
    :type source: str
    :param tool: The export's tool: auto, cloud_annotations, label_studio or csv.
    :type tool: str
    :param label_key: Key column of the table written: SOPInstanceUID (the default, a PACS source)
        or file (input.dicom's file column); give it as input.dicom's label_key.
    :type label_key: str
    :param metadata: Table of the known images (input.dicom's metadata, transform.dicom_to_images'
        index.csv or predict.images' predictions: columns SOPInstanceUID, file and optionally
        image); needed to key images named by file to SOPInstanceUID. Entries for images not in it
        are refused.
    :type metadata: str | None
    :param label_column: Column of a CSV export that holds the label.
    :type label_column: str
    :param from_name: Name of the Label Studio Choices control to read; empty: the only one there
        is.
    :type from_name: str
    """

    component = "input.labels"
    component_fields = ("source", "tool", "label_key", "metadata", "label_column", "from_name")
    ui_color = "#e3f2fd"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        source: str,
        tool: str = "auto",
        label_key: str = "SOPInstanceUID",
        metadata: str | None = None,
        label_column: str = "label",
        from_name: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.tool = tool
        self.label_key = label_key
        self.metadata = metadata
        self.label_column = label_column
        self.from_name = from_name
