"""Convert a Parquet table to CSV with Spark (or in-process with pyarrow for small inputs)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError


@component("transform", cpu="2", memory="4Gi")
def spark_parquet_to_csv(
    table: InputPath,
    header: bool = True,
    delimiter: str = ",",
    single_file: bool = True,
    backend: Literal["auto", "spark", "local"] = "auto",
    output: OutputPath = "table.csv",
) -> dict:
    """Convert a Parquet file or dataset folder to CSV with Spark.

    With ``single_file`` (the default) the output is one CSV file; otherwise a folder of
    ``part-NNNNN.csv`` files written in parallel (for tables too large for one writer). Timestamps are
    written in ISO 8601, UTC. ``backend="auto"`` converts small tables in-process with pyarrow (no JVM
    to start) and large ones with Spark (see ``claimed_airflow.core.spark.backend_for``).

    :param table: Parquet file or dataset folder (e.g. the output of ``transform.spark_csv_to_parquet``).
    :param header: Write the column names as the first line.
    :param delimiter: Field separator.
    :param single_file: One CSV file (all rows through one writer) instead of a folder of part files.
    :param backend: ``auto`` (local when small and no Spark master is configured, else spark), ``spark`` or
        ``local`` (pyarrow in this process).
    :param output: CSV file, or folder of CSV part files.
    """
    if len(delimiter) != 1:
        raise ClaimedError(f"delimiter: expected one character, got {delimiter!r}")
    from claimed_airflow.core import spark as sp

    if sp.backend_for(backend, table) == "local":
        data = sp.read_local(table)
        _write_csv(data, Path(output) if single_file else Path(output) / "part-00000.csv", header, delimiter)
        return {"rows": data.num_rows, "columns": data.num_columns}
    spark = sp.session()
    frame = sp.read(spark, table)
    options = {"header": str(header).lower(), "sep": delimiter}
    sp.write(frame, output, fmt="csv", single_file=single_file, options=options)
    return {"rows": frame.count(), "columns": len(frame.columns)}


def _write_csv(data, path: Path, header: bool, delimiter: str) -> None:
    """pyarrow's CSV writer with timestamps as Spark writes them (ISO 8601, milliseconds, UTC)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    for i, field in enumerate(data.schema):
        if pa.types.is_timestamp(field.type):
            utc = pc.cast(data.column(i), pa.timestamp("ms", tz=field.type.tz or "UTC"))
            text = pc.binary_join_element_wise(pc.strftime(utc, format="%Y-%m-%dT%H:%M:%S"), "Z", "")
            data = data.set_column(i, field.name, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcsv.write_csv(data, path, pcsv.WriteOptions(include_header=header, delimiter=delimiter, quoting_style="needed"))
