"""Transform operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class ApplyTransformOperator(ClaimedOperator):
    """Compute ``column = expression`` on a table (CSV, Parquet or JSON lines) and write it as Parquet.

    The expression uses column names, numbers, strings, arithmetic, comparisons,
    ``and``/``or``/``not``, ``x if cond else y``, ``in [...]`` and abs/min/max/round/log. Nothing
    else is evaluated: no attribute access, no calls of arbitrary functions.

    Runs the ``transform.apply`` component. Outputs (XCom keys): output.

    :param table: Input table.
    :type table: str
    :param column: Name of the column to add or replace.
    :type column: str
    :param expression: Expression over the columns, e.g. ``age >= 25`` or ``amount / duration``.
    :type expression: str
    """

    component = "transform.apply"
    component_fields = ("table", "column", "expression")
    ui_color = "#e8f5e9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        table: str,
        column: str,
        expression: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.column = column
        self.expression = expression


class DeidentifyTransformOperator(ClaimedOperator):
    """De-identify DICOM files after the PS3.15 Annex E Basic Application Level Confidentiality Profile.

    Applies every attribute of Table E.1-1 in the newest edition of the standard that dicom-
    anonymizer ships (2026c here): removes, empties or replaces with dummy values the identifying
    attributes (names, IDs, dates, institutions, physicians, comments, ...), curves, overlays, all
    private tags and public tags the DICOM dictionary does not know. Then an allow-list: every other
    text element (VR AE, AS, CS, DA, DS, DT, IS, LO, LT, PN, SH, ST, TM, UC, UR, UT), sequences
    included, is emptied unless its attribute is a safe one (Modality, BodyPartExamined, pixel and
    acquisition description, coded concepts, ...) and its value has its VR's strict form. Structured
    content (Clean Structured Content Option, ``clean_structured_content``): text values emptied,
    coded concepts, numbers and references kept. UIDs quoted inside kept text get the same new UID;
    the 128-byte preamble is zeroed and the file meta rebuilt. With ``shift_dates`` the dates of the
    attributes the Modified Dates Option modifies move by a number of days fixed per patient by the
    salt (times kept); birth dates and device dates keep their action (emptied or removed). Every
    UID attribute (by the dictionary's VR, whatever VR the file stored it with) that is not a
    registered UID is replaced by ``2.25.<HMAC-SHA256(salt, value)>``: the same input gets the same
    new UID, within a run and across runs with the same salt. The salt comes from an Airflow
    connection (password or extra ``salt``) or an environment variable, needs 16 characters (8
    distinct) and is never logged or recorded. Files are written flat as ``<new
    SOPInstanceUID>.dcm``: a name made by us, never from an input value; PatientIdentityRemoved and
    the De-identification Method codes (113100, 113104, 113107, 113108, 113111 as applied) are set.
    Pixel text is not removed by default: files flagged BurnedInAnnotation or
    RecognizableVisualFeatures YES, and files of a modality (US, SC, OT, XC, ES, OP, GM, SM, DOC,
    XA, RF, IVUS) or SOP class (Secondary Capture, VL, video, ultrasound, ophthalmic photography,
    ...) that often burns text into the pixels unless flagged BurnedInAnnotation ``NO``, are set
    aside with the reason unless ``burned_in="keep"``, or ``burned_in="redact"``: the words OCR
    (Tesseract) finds in each frame are blacked out.

    Runs the ``transform.deidentify`` component. Outputs (XCom keys): output, table, report.

    :param files: Folder of DICOM files (e.g. the ``files`` output of ``input.dicom``), searched
        recursively.
    :type files: str
    :param metadata: Optional metadata table from ``input.dicom``; rewritten with the new file names
        and UIDs. With ``shard_tables`` only its rows of the shard's files are read; without it the
        shard table's rows are.
    :type metadata: str | None
    :param salt_connection: Airflow connection whose password (or extra ``salt``) keys the UID
        replacement.
    :type salt_connection: str | None
    :param salt_env: Name of an environment variable holding the salt (no connection given).
    :type salt_env: str | None
    :param keep_patient_sex: Keep PatientSex M, F or O (Retain Patient Characteristics Option) for
        fairness checks.
    :type keep_patient_sex: bool
    :param keep_patient_age: Keep the age in years (PatientAge ``NNNY``, from 90 on ``090Y``) for
        fairness checks.
    :type keep_patient_age: bool
    :param shift_dates: Move the study, series, acquisition and content dates by a per-patient
        number of days (1 to 3652 back) instead of removing them (Retain Longitudinal Temporal
        Information Modified Dates Option).
    :type shift_dates: bool
    :param clean_structured_content: Keep structured content (SR content items) cleaned: text values
        emptied, coded concepts, numbers and references kept (Clean Structured Content Option). Off:
        content emptied.
    :type clean_structured_content: bool
    :param retain_safe_private: Private attributes known to be safe, kept (Retain Safe Private
        Option), each ``"gggg,xxee,CREATOR"`` (e.g. ``"0019,xx0B,GEMS_ACQU_01"``); none by default:
        every private tag goes.
    :type retain_safe_private: list[str] | None
    :param burned_in: Files that may show identifying text in the pixels: ``reject`` them (set
        aside, the default), ``keep`` them (listed in the report; the pixels are not cleaned) or
        ``redact`` the text that OCR (the ``tesseract`` command) finds in every frame, then keep
        them (listed, with the number of words blacked out; OCR can miss text: review them). Files
        flagged RecognizableVisualFeatures YES are set aside unless ``keep``.
    :type burned_in: str
    :param shard_tables: Shard tables of input.dicom: de-identify only the files of shard
        ``shard_index`` (an empty shard, or one whose files are all set aside, writes empty outputs;
        transform.merge_shards joins them).
    :type shard_tables: str | None
    :param shard_index: The shard of ``shard_tables`` to de-identify (0-based); none: every shard,
        merged.
    :type shard_index: int | None
    """

    component = "transform.deidentify"
    component_fields = (
        "files",
        "metadata",
        "salt_connection",
        "salt_env",
        "keep_patient_sex",
        "keep_patient_age",
        "shift_dates",
        "clean_structured_content",
        "retain_safe_private",
        "burned_in",
        "shard_tables",
        "shard_index",
    )
    ui_color = "#e8f5e9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        files: str,
        metadata: str | None = None,
        salt_connection: str | None = None,
        salt_env: str | None = None,
        keep_patient_sex: bool = False,
        keep_patient_age: bool = False,
        shift_dates: bool = False,
        clean_structured_content: bool = True,
        retain_safe_private: list[str] | None = None,
        burned_in: str = "reject",
        shard_tables: str | None = None,
        shard_index: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.files = files
        self.metadata = metadata
        self.salt_connection = salt_connection
        self.salt_env = salt_env
        self.keep_patient_sex = keep_patient_sex
        self.keep_patient_age = keep_patient_age
        self.shift_dates = shift_dates
        self.clean_structured_content = clean_structured_content
        self.retain_safe_private = retain_safe_private
        self.burned_in = burned_in
        self.shard_tables = shard_tables
        self.shard_index = shard_index


class DicomToImagesTransformOperator(ClaimedOperator):
    """Decode DICOM files into 8-bit grayscale PNGs in one sub-folder per label, plus an ``index.csv``.

    Applies the Modality LUT (rescale slope/intercept or LUT), the VOI LUT or window (center/width),
    inverts MONOCHROME1 and scales to 0-255; colour images become their luminance. Decoders: pydicom
    with pylibjpeg (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE); deflated and
    big/little endian, explicit/implicit VR files natively. Files are decoded in parallel worker
    processes with a bounded queue, so memory stays flat as the number of files grows. Files that
    cannot be decoded (truncated, no pixel data, unsupported compression, frames larger than
    ``max_pixels``) are reported and left out; the task fails only if none remain or more than
    ``max_rejected`` fail.

    Runs the ``transform.dicom_to_images`` component. Outputs (XCom keys): images.

    :param files: Folder with the DICOM files named in the ``file`` column.
    :type files: str
    :param metadata: Metadata table from ``input.dicom`` (columns file, label, PatientSex,
        PatientAge, ...); with ``shard_tables`` only its rows of the shard's files are read, and
        without it the shard table's rows are used.
    :type metadata: str | None
    :param size: Width and height of the written images in pixels; 0 keeps each image's own size.
    :type size: int
    :param aspect: How a non-square image becomes square: stretch, pad (black borders) or crop
        (centre).
    :type aspect: str
    :param windowing: ``dicom`` uses the file's VOI LUT/window when present (else min..max);
        ``minmax`` always scales the frame's min..max range.
    :type windowing: str
    :param frame: Frame of multi-frame files to write (0-based, negative counts from the end).
    :type frame: int
    :param all_frames: Write every frame of multi-frame files (``<name>_f0003.png``) instead of one.
    :type all_frames: bool
    :param label_column: Column with the class label; rows without one go to ``_unlabelled``.
    :type label_column: str
    :param shards: Also write NumPy shards ``_shards/shard-NNNNN.npz`` (arrays images, image,
        label).
    :type shards: bool
    :param shard_size: Images per NumPy shard.
    :type shard_size: int
    :param workers: Worker processes decoding in parallel; 0 = the number of CPUs available, 1 = no
        pool.
    :type workers: int
    :param max_pixels: Largest frame (Rows x Columns x samples) decoded; larger files are set aside.
    :type max_pixels: int
    :param max_rejected: Fail the task when more files than this are set aside (default: never,
        unless all).
    :type max_rejected: int | None
    :param fast_decode: Decode JPEG 2000 and 8-bit grayscale JPEG baseline files only at the
        resolution ``size`` needs (wavelet levels, DCT scaling): several times faster on large
        images; pixels differ from a full decode + resize by a few grey levels on average (sharper
        edges differ more). False always decodes in full.
    :type fast_decode: bool
    :param shard_tables: Shard tables of input.dicom: decode only the files of shard ``shard_index``
        (an empty shard, or one whose files are all set aside, writes an empty output;
        transform.merge_shards joins them).
    :type shard_tables: str | None
    :param shard_index: The shard of ``shard_tables`` to decode (0-based); none: every shard,
        merged.
    :type shard_index: int | None
    """

    component = "transform.dicom_to_images"
    component_fields = (
        "files",
        "metadata",
        "size",
        "aspect",
        "windowing",
        "frame",
        "all_frames",
        "label_column",
        "shards",
        "shard_size",
        "workers",
        "max_pixels",
        "max_rejected",
        "fast_decode",
        "shard_tables",
        "shard_index",
    )
    ui_color = "#e8f5e9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        files: str,
        metadata: str | None = None,
        size: int = 64,
        aspect: str = "stretch",
        windowing: str = "dicom",
        frame: int = 0,
        all_frames: bool = False,
        label_column: str = "label",
        shards: bool = False,
        shard_size: int = 1024,
        workers: int = 0,
        max_pixels: int = 100000000,
        max_rejected: int | None = None,
        fast_decode: bool = True,
        shard_tables: str | None = None,
        shard_index: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.files = files
        self.metadata = metadata
        self.size = size
        self.aspect = aspect
        self.windowing = windowing
        self.frame = frame
        self.all_frames = all_frames
        self.label_column = label_column
        self.shards = shards
        self.shard_size = shard_size
        self.workers = workers
        self.max_pixels = max_pixels
        self.max_rejected = max_rejected
        self.fast_decode = fast_decode
        self.shard_tables = shard_tables
        self.shard_index = shard_index


class MergeShardsTransformOperator(ClaimedOperator):
    """Join the outputs of the shards of a mapped task (one output, every shard) into one, in shard order.

    Folders (``images``, ``files``) become one folder: their files linked in (copied across file
    systems), tables met in every shard (``index.csv``) concatenated; a file name written by two
    shards is an error. Tables (CSV or Parquet) and JSON reports become ``merged/<their name>``:
    rows concatenated (Parquet columns promoted to one type, e.g. a column empty in one shard),
    report lists concatenated and counts summed, but a count of distinct values the shards list
    (``_distinct``: the de-identification's ``uids_mapped``) counts them over all shards. Parts are
    read one at a time, rows streamed: memory does not grow with the number of rows. Empty shards
    add nothing.

    Runs the ``transform.merge_shards`` component. Outputs (XCom keys): merged.

    :param parts: URIs of the shards' outputs, in shard order (the mapped task's
        ``output["<name>"]``).
    :type parts: list[str]
    :param min_rows: Fail when the merged tables have fewer rows (a folder without tables: files)
        than this (every shard empty or its files set aside).
    :type min_rows: int
    """

    component = "transform.merge_shards"
    component_fields = ("parts", "min_rows")
    ui_color = "#e8f5e9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        parts: list[str],
        min_rows: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.parts = parts
        self.min_rows = min_rows


class SparkCsvToParquetTransformOperator(ClaimedOperator):
    """Convert a CSV file (or a folder of CSV files) to a Parquet dataset with Spark.

    The output is a folder of ``part-NNNNN.<compression>.parquet`` files (``pandas.read_parquet``
    and pyarrow read it as one table), partitioned into ``column=value`` sub-folders when
    ``partition_by`` is given. Column types are inferred from the data when ``infer_schema`` is
    true, else all are strings. ``backend="auto"`` converts small files in-process with pyarrow (no
    JVM to start) and large ones with Spark (see ``claimed_airflow.core.spark.backend_for``).

    Runs the ``transform.spark_csv_to_parquet`` component. Outputs (XCom keys): output.

    :param table: CSV file or folder of CSV files.
    :type table: str
    :param header: The first line holds the column names.
    :type header: bool
    :param delimiter: Field separator.
    :type delimiter: str
    :param infer_schema: Infer column types (one extra pass over the data); false reads every column
        as string.
    :type infer_schema: bool
    :param partition_by: Columns to partition the dataset by (``column=value`` folders).
    :type partition_by: list[str] | None
    :param compression: Parquet compression codec.
    :type compression: str
    :param backend: ``auto`` (local when small and no Spark master is configured, else spark),
        ``spark`` (any size, on the Spark master) or ``local`` (pyarrow in this process, one
        machine's memory).
    :type backend: str
    """

    component = "transform.spark_csv_to_parquet"
    component_fields = ("table", "header", "delimiter", "infer_schema", "partition_by", "compression", "backend")
    ui_color = "#e8f5e9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        table: str,
        header: bool = True,
        delimiter: str = ",",
        infer_schema: bool = True,
        partition_by: list[str] | None = None,
        compression: str = "snappy",
        backend: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.header = header
        self.delimiter = delimiter
        self.infer_schema = infer_schema
        self.partition_by = partition_by
        self.compression = compression
        self.backend = backend


class SparkParquetToCsvTransformOperator(ClaimedOperator):
    """Convert a Parquet file or dataset folder to CSV with Spark.

    With ``single_file`` (the default) the output is one CSV file; otherwise a folder of ``part-
    NNNNN.csv`` files written in parallel (for tables too large for one writer). Timestamps are
    written in ISO 8601, UTC. ``backend="auto"`` converts small tables in-process with pyarrow (no
    JVM to start) and large ones with Spark (see ``claimed_airflow.core.spark.backend_for``).

    Runs the ``transform.spark_parquet_to_csv`` component. Outputs (XCom keys): output.

    :param table: Parquet file or dataset folder (e.g. the output of
        ``transform.spark_csv_to_parquet``).
    :type table: str
    :param header: Write the column names as the first line.
    :type header: bool
    :param delimiter: Field separator.
    :type delimiter: str
    :param single_file: One CSV file (all rows through one writer) instead of a folder of part
        files.
    :type single_file: bool
    :param backend: ``auto`` (local when small and no Spark master is configured, else spark),
        ``spark`` or ``local`` (pyarrow in this process).
    :type backend: str
    """

    component = "transform.spark_parquet_to_csv"
    component_fields = ("table", "header", "delimiter", "single_file", "backend")
    ui_color = "#e8f5e9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        table: str,
        header: bool = True,
        delimiter: str = ",",
        single_file: bool = True,
        backend: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.header = header
        self.delimiter = delimiter
        self.single_file = single_file
        self.backend = backend


class SparkSqlTransformOperator(ClaimedOperator):
    """Run a Spark SQL ``SELECT`` over a table (CSV, Parquet or JSON lines) and write the result as Parquet.

    The table is registered as the temporary view ``view``, e.g. ``SELECT sensor, avg(value) AS mean
    FROM input GROUP BY sensor``. Only one ``SELECT`` or ``WITH ... SELECT`` query of allowed parts
    is accepted (``claimed_airflow.core.sql``: no ``TRANSFORM ... USING``, Java, file or URL tables,
    DDL or commands), so the query sees only the given table. ``backend="auto"`` runs small tables
    in-process: the query is translated from Spark SQL to DuckDB's dialect (sqlglot) and run by
    DuckDB, no JVM to start; large tables, or any table when a Spark master is configured, go to
    Spark (see ``claimed_airflow.core.spark.backend_for``). A Spark function DuckDB lacks fails with
    a clear error on the local backend; ``backend="spark"`` then runs it.

    Runs the ``transform.spark_sql`` component. Outputs (XCom keys): output.

    :param table: Input table: file or folder (CSV with a header, Parquet, JSON lines).
    :type table: str
    :param query: One Spark SQL query (SELECT or WITH) over the view.
    :type query: str
    :param view: Name under which the table is visible in the query.
    :type view: str
    :param backend: ``auto`` (local when small and no Spark master is configured, else spark),
        ``spark`` or ``local`` (DuckDB in this process).
    :type backend: str
    """

    component = "transform.spark_sql"
    component_fields = ("table", "query", "view", "backend")
    ui_color = "#e8f5e9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        table: str,
        query: str,
        view: str = "input",
        backend: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.query = query
        self.view = view
        self.backend = backend
