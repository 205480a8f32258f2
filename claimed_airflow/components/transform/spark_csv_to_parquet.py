"""Convert a CSV table to Parquet with Spark (or in-process with pyarrow for small inputs)."""

from __future__ import annotations

from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.tables import require_columns


@component("transform", cpu="2", memory="4Gi")
def spark_csv_to_parquet(
    table: InputPath,
    header: bool = True,
    delimiter: str = ",",
    infer_schema: bool = True,
    partition_by: list[str] | None = None,
    compression: Literal["snappy", "zstd", "gzip", "none"] = "snappy",
    backend: Literal["auto", "spark", "local"] = "auto",
    output: OutputPath = "table.parquet",
) -> dict:
    """Convert a CSV file (or a folder of CSV files) to a Parquet dataset with Spark.

    The output is a folder of ``part-NNNNN.<compression>.parquet`` files (``pandas.read_parquet`` and
    pyarrow read it as one table), partitioned into ``column=value`` sub-folders when ``partition_by``
    is given. Column types are inferred from the data when ``infer_schema`` is true, else all are strings.
    ``backend="auto"`` converts small files in-process with pyarrow (no JVM to start) and large ones
    with Spark (see ``claimed_airflow.core.spark.backend_for``).

    :param table: CSV file or folder of CSV files.
    :param header: The first line holds the column names.
    :param delimiter: Field separator.
    :param infer_schema: Infer column types (one extra pass over the data); false reads every column as string.
    :param partition_by: Columns to partition the dataset by (``column=value`` folders).
    :param compression: Parquet compression codec.
    :param backend: ``auto`` (local when small and no Spark master is configured, else spark), ``spark`` (any
        size, on the Spark master) or ``local`` (pyarrow in this process, one machine's memory).
    :param output: Parquet dataset folder.
    """
    if len(delimiter) != 1:
        raise ClaimedError(f"delimiter: expected one character, got {delimiter!r}")
    from claimed_airflow.core import spark as sp

    if sp.backend_for(backend, table) == "local":
        data = sp.read_local(table, header=header, delimiter=delimiter, infer_schema=infer_schema)
        _check_partitions(partition_by, data.column_names)
        sp.write_local(data, output, compression=compression, partition_by=partition_by)
        return {"rows": data.num_rows, "columns": data.num_columns}
    spark = sp.session()
    frame = sp.read(spark, table, header=header, delimiter=delimiter, infer_schema=infer_schema)
    _check_partitions(partition_by, frame.columns)
    sp.write(frame, output, partition_by=partition_by, options={"compression": compression})
    return {"rows": sp.count(spark, output), "columns": len(frame.columns)}


def _check_partitions(partition_by: list[str] | None, columns: list[str]) -> None:
    require_columns(columns, partition_by or [], param="partition_by")
