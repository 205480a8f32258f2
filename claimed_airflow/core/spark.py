"""Shared by the Spark components: the SparkSession and reading/writing tables with Spark.

Under ``spark-submit`` (engine ``spark``) the session is the one spark-submit configured (master
from the ``spark_default`` connection). In-process (engine ``local``) a local session is started:
master: setting ``spark_master`` or ``local[*]``, no web UI. pyspark is imported inside the functions.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.settings import setting

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    # small local jobs: few shuffle partitions (adaptive execution coalesces further)
    "spark.sql.shuffle.partitions": str(max(2, 2 * (os.cpu_count() or 1))),
}
log = logging.getLogger(__name__)
TABLE_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "json",
}


def under_spark_submit() -> bool:
    """True in a Python driver started by spark-submit (it passes the JVM gateway to Python)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def session(app: str | None = None) -> SparkSession:
    """The SparkSession of spark-submit, else a local one; named after the component that runs (or ``app``)."""
    from pyspark.sql import SparkSession

    from claimed_airflow.core.context import current

    builder = SparkSession.builder.appName(app or current().component or "claimed-airflow")
    if not under_spark_submit():
        builder = builder.master(str(setting("spark_master")))
        for key, value in LOCAL_CONF.items():
            builder = builder.config(key, value)
    # py4j logs every closed connection at INFO when the process exits; Airflow's logging shows INFO
    logging.getLogger("py4j").setLevel(logging.WARNING)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(str(setting("spark_log_level")))
    return spark


def spread(function, items: list) -> list:
    """``function(item)`` for each item as one Spark task, spread over the executors; the results in order.

    ``function`` must be importable on the executors (a module-level function of an installed package)."""
    context = session().sparkContext
    return context.parallelize(list(items), max(1, len(items))).map(function).collect()


def table_format(path: str | Path, name: str = "table") -> str:
    """csv, parquet or json from the suffix of a file or folder (a folder without one: by its files)."""
    path = Path(path)
    fmt = TABLE_SUFFIXES.get(path.suffix.lower())
    if fmt:
        return fmt
    if path.is_dir():
        found = {TABLE_SUFFIXES.get(p.suffix.lower()) for p in path.rglob("*") if p.is_file()} - {None}
        if len(found) == 1:
            return found.pop()
    raise ClaimedError(f"{name}: cannot tell the format of {path.name} (expected .csv, .parquet or .json/.jsonl)")


def read(
    spark: SparkSession,
    path: str | Path,
    *,
    name: str = "table",
    header: bool = True,
    delimiter: str | None = None,
    infer_schema: bool = True,
) -> DataFrame:
    """A CSV, Parquet or JSON (lines) file or folder as a DataFrame."""
    fmt = table_format(path, name)
    reader = spark.read
    if fmt == "csv":
        sep = delimiter or ("\t" if Path(path).suffix.lower() == ".tsv" else ",")
        reader = reader.option("header", header).option("inferSchema", infer_schema).option("sep", sep)
    try:
        return reader.format(fmt).load(str(path))
    except Exception as exc:  # AnalysisException and friends: one line naming the input
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClaimedError(f"{name}: cannot read {Path(path).name}: {message}") from None


def write(
    frame: DataFrame,
    path: str | Path,
    *,
    fmt: str = "parquet",
    single_file: bool = False,
    partition_by: list[str] | None = None,
    options: dict[str, str] | None = None,
) -> None:
    """Write ``frame`` to ``path``: a folder of ``part-NNNNN.<ext>`` files, or one file (``single_file``).

    Part files get stable names and Spark's ``_SUCCESS``/``.crc`` side files are removed, so the same
    data written twice hashes the same in the run manifest.
    """
    path = Path(path)
    staging = path.with_name(f".{path.name}.spark")
    writer = (frame.coalesce(1) if single_file else frame).write.mode("overwrite").options(**(options or {}))
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.format(fmt).save(str(staging))
    tidy(staging)
    if single_file:
        parts = sorted(p for p in staging.rglob("part-*") if p.is_file())
        if len(parts) != 1:
            raise RuntimeError(f"expected one part file in {staging}, found {len(parts)}")
        shutil.move(parts[0], path)
        shutil.rmtree(staging)
    else:
        os.replace(staging, path)


def tidy(folder: Path) -> None:
    """Drop ``_SUCCESS`` and ``.crc`` files; ``part-00000-<uuid>-c000.<ext>`` becomes ``part-00000.<ext>``."""
    for file in list(folder.rglob("*")):
        if not file.is_file():
            continue
        if file.name == "_SUCCESS" or file.name.endswith(".crc"):
            file.unlink()
        elif file.name.startswith("part-"):
            number = file.name.split("-")[1]
            extension = file.name.split(".", 1)[1] if "." in file.name else ""
            file.rename(file.with_name(f"part-{number}.{extension}" if extension else f"part-{number}"))


def count(spark: SparkSession, path: str | Path, fmt: str = "parquet") -> int:
    """Rows of a written table (for Parquet from the footers)."""
    return spark.read.format(fmt).load(str(path)).count()


# -- backend="auto": Spark, or in this process without a JVM ------------------------------------------


def backend_for(backend: str, *inputs: str | Path) -> str:
    """``spark`` or ``local`` (in-process: pyarrow, pandas, DuckDB; no JVM) for a Spark component's ``backend``.

    ``auto`` picks Spark when the task runs under spark-submit (engine ``spark``), when a Spark master
    is configured for in-process runs (setting ``spark_master``), or when the inputs are larger than
    setting ``spark_auto_bytes`` (default 256 MiB, what one process reads into memory comfortably);
    otherwise local: starting a JVM costs seconds, converting 10,000 rows in-process milliseconds.
    """
    if backend != "auto":
        return backend
    if under_spark_submit() or setting("spark_master", None):  # set, not its default
        log.info("backend auto: spark (spark-submit or setting spark_master)")
        return "spark"
    limit = int(setting("spark_auto_bytes"))
    size = 0
    for item in map(Path, inputs):
        files = item.rglob("*") if item.is_dir() else [item]
        size += sum(f.stat().st_size for f in files if f.is_file())
    chosen = "spark" if size > limit else "local"
    log.info("backend auto: %s (inputs %d bytes, local up to %d)", chosen, size, limit)
    return chosen


def _files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not path.is_dir():
        return [path]
    found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    return found


def read_local(
    path: str | Path, *, name: str = "table", header: bool = True, delimiter: str | None = None, infer_schema=True
):
    """The local backend's :func:`read`: a CSV, Parquet (dataset folder, ``column=value`` partitions) or
    JSON lines file or folder as a pyarrow Table."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.dataset as ds
    import pyarrow.json as pjson

    path = Path(path)
    fmt = table_format(path, name)
    try:
        if fmt == "parquet":
            return ds.dataset(path, format="parquet", partitioning="hive").to_table()
        if fmt == "json":
            return pa.concat_tables(
                [pjson.read_json(f) for f in _files(path, (".json", ".jsonl"))], promote_options="permissive"
            )
        files = _files(path, (".csv", ".tsv"))
        if not files:
            raise ClaimedError(f"{name}: no .csv file in {path.name}")
        sep = delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
        read = pcsv.ReadOptions(autogenerate_column_names=not header)
        parse = pcsv.ParseOptions(delimiter=sep)
        tables = [pcsv.read_csv(f, read_options=read, parse_options=parse) for f in files]
        if not infer_schema:
            convert = pcsv.ConvertOptions(column_types={n: pa.string() for n in tables[0].column_names})
            tables = [pcsv.read_csv(f, read_options=read, parse_options=parse, convert_options=convert) for f in files]
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, OSError) as exc:
        raise ClaimedError(f"{name}: cannot read {path.name}: {str(exc).splitlines()[0]}") from None


def write_local(
    table,
    path: str | Path,
    *,
    compression: str = "snappy",
    partition_by: list[str] | None = None,
) -> None:
    """The local backend's :func:`write` for Parquet: a dataset folder of ``part-N.<codec>.parquet`` files."""
    import pyarrow.dataset as ds

    path, codec = Path(path), None if compression == "none" else compression
    staging = path.with_name(f".{path.name}.local")
    shutil.rmtree(staging, ignore_errors=True)
    ds.write_dataset(
        table,
        staging,
        format="parquet",
        basename_template=f"part-{{i}}.{compression}.parquet",
        partitioning=partition_by or None,
        partitioning_flavor="hive" if partition_by else None,
        file_options=ds.ParquetFileFormat().make_write_options(compression=codec),
    )
    for part in staging.rglob("part-*"):  # part-0.snappy.parquet -> part-00000.snappy.parquet, as Spark names them
        number, rest = part.name.removeprefix("part-").split(".", 1)
        part.rename(part.with_name(f"part-{int(number):05d}.{rest}"))
    os.replace(staging, path)


def sql_local(table, query: str, view: str):
    """Run one Spark SQL query (as ``core.sql.check`` returns it) over a pyarrow Table in DuckDB, translated
    by sqlglot; no file access from SQL."""
    import duckdb
    import sqlglot

    try:
        statements = sqlglot.transpile(query, read="spark", write="duckdb")
    except sqlglot.errors.SqlglotError as exc:
        raise ClaimedError(f"query: {str(exc).strip().splitlines()[0]}") from None
    if len(statements) != 1:
        raise ClaimedError(f"query: expected one query, got {len(statements)}")
    con = duckdb.connect()
    try:
        con.register(view, table)
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con.sql(statements[0]).to_arrow_table()
    except duckdb.Error as exc:
        message = str(exc).strip().splitlines()[0]
        raise ClaimedError(f"query: {message} (backend local: DuckDB; backend=spark runs Spark SQL itself)") from None
    finally:
        con.close()
