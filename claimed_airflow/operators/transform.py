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
    template_fields = (*component_fields, "engine", "output_root")

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


class DicomToImagesTransformOperator(ClaimedOperator):
    """Decode DICOM files into square 8-bit PNGs in one sub-folder per label, plus an ``index.csv``.

    Applies the Modality LUT (rescale slope/intercept) and VOI LUT/window, inverts MONOCHROME1 and
    scales each image to 0-255. Multi-frame files contribute their first frame. Files that cannot be
    decoded are reported and left out.

    Runs the ``transform.dicom_to_images`` component. Outputs (XCom keys): images.

    :param metadata: Metadata table from ``input.dicom`` (columns file, label, PatientSex,
        PatientAge, ...).
    :type metadata: str
    :param files: Folder with the DICOM files named in the ``file`` column.
    :type files: str
    :param size: Width and height of the written images in pixels.
    :type size: int
    :param label_column: Column with the class label; rows without one go to ``_unlabelled``.
    :type label_column: str
    """

    component = "transform.dicom_to_images"
    component_fields = ("metadata", "files", "size", "label_column")
    template_fields = (*component_fields, "engine", "output_root")

    def __init__(
        self,
        *,
        metadata: str,
        files: str,
        size: int = 64,
        label_column: str = "label",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metadata = metadata
        self.files = files
        self.size = size
        self.label_column = label_column


class SparkCsvToParquetOperator(ClaimedOperator):
    """Convert a CSV file (or a folder of CSV files) to a Parquet dataset with Spark.

    The output is a folder of ``part-NNNNN.<compression>.parquet`` files (``pandas.read_parquet``
    and pyarrow read it as one table), partitioned into ``column=value`` sub-folders when
    ``partition_by`` is given. Column types are inferred from the data when ``infer_schema`` is
    true, else all are strings. ``backend="pyarrow"`` converts in-process without starting Spark,
    faster for small files.

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
    :param backend: ``spark`` (any size, runs on the Spark master) or ``pyarrow`` (in-process, one
        machine).
    :type backend: str
    """

    component = "transform.spark_csv_to_parquet"
    component_fields = ("table", "header", "delimiter", "infer_schema", "partition_by", "compression", "backend")
    template_fields = (*component_fields, "engine", "output_root")

    def __init__(
        self,
        *,
        table: str,
        header: bool = True,
        delimiter: str = ",",
        infer_schema: bool = True,
        partition_by: list[str] | None = None,
        compression: str = "snappy",
        backend: str = "spark",
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


class SparkParquetToCsvOperator(ClaimedOperator):
    """Convert a Parquet file or dataset folder to CSV with Spark.

    With ``single_file`` (the default) the output is one CSV file; otherwise a folder of ``part-
    NNNNN.csv`` files written in parallel (for tables too large for one writer). Timestamps are
    written in ISO 8601, UTC.

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
    """

    component = "transform.spark_parquet_to_csv"
    component_fields = ("table", "header", "delimiter", "single_file")
    template_fields = (*component_fields, "engine", "output_root")

    def __init__(
        self,
        *,
        table: str,
        header: bool = True,
        delimiter: str = ",",
        single_file: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.header = header
        self.delimiter = delimiter
        self.single_file = single_file


class SparkSqlOperator(ClaimedOperator):
    """Run a Spark SQL ``SELECT`` over a table (CSV, Parquet or JSON lines) and write the result as Parquet.

    The table is registered as the temporary view ``view``, e.g. ``SELECT sensor, avg(value) AS mean
    FROM input GROUP BY sensor``. Only one ``SELECT`` or ``WITH ... SELECT`` query is accepted, and
    reading files by path from SQL is switched off, so the query sees only the given table.

    Runs the ``transform.spark_sql`` component. Outputs (XCom keys): output.

    :param table: Input table: file or folder (CSV with a header, Parquet, JSON lines).
    :type table: str
    :param query: One Spark SQL query (SELECT or WITH) over the view.
    :type query: str
    :param view: Name under which the table is visible in the query.
    :type view: str
    """

    component = "transform.spark_sql"
    component_fields = ("table", "query", "view")
    template_fields = (*component_fields, "engine", "output_root")

    def __init__(
        self,
        *,
        table: str,
        query: str,
        view: str = "input",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.query = query
        self.view = view
