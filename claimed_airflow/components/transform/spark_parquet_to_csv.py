"""Convert a Parquet table to CSV with Spark."""

from __future__ import annotations

import sys

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError

COMPONENT = "transform.spark_parquet_to_csv"


@component("transform", cpu="2", memory="4Gi", operator="SparkParquetToCsvOperator")
def spark_parquet_to_csv(
    table: InputPath,
    header: bool = True,
    delimiter: str = ",",
    single_file: bool = True,
    output: OutputPath = "table.csv",
) -> dict:
    """Convert a Parquet file or dataset folder to CSV with Spark.

    With ``single_file`` (the default) the output is one CSV file; otherwise a folder of
    ``part-NNNNN.csv`` files written in parallel (for tables too large for one writer). Timestamps are
    written in ISO 8601, UTC.

    :param table: Parquet file or dataset folder (e.g. the output of ``transform.spark_csv_to_parquet``).
    :param header: Write the column names as the first line.
    :param delimiter: Field separator.
    :param single_file: One CSV file (all rows through one writer) instead of a folder of part files.
    :param output: CSV file, or folder of CSV part files.
    """
    if len(delimiter) != 1:
        raise ClaimedError(f"delimiter: expected one character, got {delimiter!r}")
    from claimed_airflow.core import spark as sp

    spark = sp.session(COMPONENT)
    frame = sp.read(spark, table)
    options = {"header": str(header).lower(), "sep": delimiter}
    sp.write(frame, output, fmt="csv", single_file=single_file, options=options)
    return {"rows": frame.count(), "columns": len(frame.columns)}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``spark-submit`` (engine ``spark``): ``claimed-airflow run`` for this component."""
    from claimed_airflow.cli import component_main

    return component_main(COMPONENT, argv)


if __name__ == "__main__":
    sys.exit(main())
