"""Convert a CSV table to Parquet with Spark (or in-process with pyarrow for small inputs)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError

COMPONENT = "transform.spark_csv_to_parquet"


@component("transform", cpu="2", memory="4Gi", operator="SparkCsvToParquetOperator")
def spark_csv_to_parquet(
    table: InputPath,
    header: bool = True,
    delimiter: str = ",",
    infer_schema: bool = True,
    partition_by: list[str] | None = None,
    compression: Literal["snappy", "zstd", "gzip", "none"] = "snappy",
    backend: Literal["spark", "pyarrow"] = "spark",
    output: OutputPath = "table.parquet",
) -> dict:
    """Convert a CSV file (or a folder of CSV files) to a Parquet dataset with Spark.

    The output is a folder of ``part-NNNNN.<compression>.parquet`` files (``pandas.read_parquet`` and
    pyarrow read it as one table), partitioned into ``column=value`` sub-folders when ``partition_by``
    is given. Column types are inferred from the data when ``infer_schema`` is true, else all are strings.
    ``backend="pyarrow"`` converts in-process without starting Spark, faster for small files.

    :param table: CSV file or folder of CSV files.
    :param header: The first line holds the column names.
    :param delimiter: Field separator.
    :param infer_schema: Infer column types (one extra pass over the data); false reads every column as string.
    :param partition_by: Columns to partition the dataset by (``column=value`` folders).
    :param compression: Parquet compression codec.
    :param backend: ``spark`` (any size, runs on the Spark master) or ``pyarrow`` (in-process, one machine).
    :param output: Parquet dataset folder.
    """
    if len(delimiter) != 1:
        raise ClaimedError(f"delimiter: expected one character, got {delimiter!r}")
    if backend == "pyarrow":
        return _pyarrow(table, header, delimiter, infer_schema, partition_by, compression, output)
    from claimed_airflow.core import spark as sp

    spark = sp.session(COMPONENT)
    frame = sp.read(spark, table, header=header, delimiter=delimiter, infer_schema=infer_schema)
    missing = [c for c in partition_by or [] if c not in frame.columns]
    if missing:
        raise ClaimedError(f"partition_by: no column(s) {', '.join(missing)}; columns: {', '.join(frame.columns)}")
    sp.write(frame, output, partition_by=partition_by, options={"compression": compression})
    return {"rows": sp.count(spark, output), "columns": len(frame.columns)}


def _pyarrow(table, header, delimiter, infer_schema, partition_by, compression, output) -> dict:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.dataset as ds

    source = Path(table)
    files = sorted(source.rglob("*.csv")) if source.is_dir() else [source]
    if not files:
        raise ClaimedError(f"table: no .csv file in {source}")
    read_options = pcsv.ReadOptions(autogenerate_column_names=not header)
    parse_options = pcsv.ParseOptions(delimiter=delimiter)
    try:
        tables = [pcsv.read_csv(f, read_options=read_options, parse_options=parse_options) for f in files]
        if not infer_schema:
            names = tables[0].column_names
            convert = pcsv.ConvertOptions(column_types={n: pa.string() for n in names})
            tables = [
                pcsv.read_csv(f, read_options=read_options, parse_options=parse_options, convert_options=convert)
                for f in files
            ]
        data = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, OSError) as exc:
        raise ClaimedError(f"table: cannot read CSV: {str(exc).splitlines()[0]}") from None
    missing = [c for c in partition_by or [] if c not in data.column_names]
    if missing:
        raise ClaimedError(f"partition_by: no column(s) {', '.join(missing)}; columns: {', '.join(data.column_names)}")
    codec = None if compression == "none" else compression
    ds.write_dataset(
        data,
        output,
        format="parquet",
        basename_template=f"part-{{i}}.{compression}.parquet",
        partitioning=partition_by or None,
        partitioning_flavor="hive" if partition_by else None,
        file_options=ds.ParquetFileFormat().make_write_options(compression=codec),
        existing_data_behavior="overwrite_or_ignore",
    )
    return {"rows": data.num_rows, "columns": data.num_columns}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``spark-submit`` (engine ``spark``): ``claimed-airflow run`` for this component."""
    from claimed_airflow.cli import component_main

    return component_main(COMPONENT, argv)


if __name__ == "__main__":
    sys.exit(main())
