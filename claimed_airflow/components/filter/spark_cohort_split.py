"""Select a cohort of rows with a Spark SQL condition and split it into train and test, seeded by a key."""

from __future__ import annotations

import re
from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.tables import require_columns

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@component("filter", cpu="2", memory="4Gi")
def spark_cohort_split(
    table: InputPath,
    where: str = "true",
    key: str = "SOPInstanceUID",
    test_fraction: float = 0.2,
    seed: int = 42,
    split_column: str = "split",
    backend: Literal["auto", "spark", "local"] = "auto",
    output: OutputPath = "cohort.parquet",
) -> dict:
    """Select a cohort of rows with a Spark SQL condition and split it into train and test, seeded by a key.

    Keeps the rows where ``where`` holds and ``key`` is set (e.g. a DICOM metadata table from
    ``input.dicom``: ``label IS NOT NULL AND Modality IN ('CR', 'DX') AND PatientAge >= 18``) and adds
    the column ``split_column`` (``train`` or ``test``). A row goes to test when the first 32 bits of
    ``sha256("<seed>:<key>")`` fall below ``test_fraction``: the split depends on the row's key alone,
    not on row order, partitioning, engine or backend, and a row keeps its side when rows are added.
    The query runs in Spark SQL, or in-process with DuckDB for small tables (``backend="auto"``, see
    ``claimed_airflow.core.spark.backend_for``); both give the same rows and split.

    :param table: Input table: file or folder (CSV with a header, Parquet, JSON lines).
    :param where: Cohort condition in Spark SQL over the table's columns (``true``: every row): one
        condition of allowed functions and constructs (``claimed_airflow.core.sql``).
    :param key: Column that identifies a row (the split is a hash of it), e.g. SOPInstanceUID or PatientID
        (all images of a patient on one side).
    :param test_fraction: Expected share of the cohort in the test split, in [0, 1].
    :param seed: Seed of the split: another seed, another split.
    :param split_column: Name of the added column.
    :param backend: ``auto`` (local when small and no Spark master is configured, else spark), ``spark`` or
        ``local`` (DuckDB in this process).
    :param output: Cohort rows with the split column, as a Parquet dataset folder.
    """
    for name, value in (("key", key), ("split_column", split_column)):
        if not _IDENTIFIER.match(value):
            raise ClaimedError(f"{name}: expected a plain column name (letters, digits, _), got {value!r}")
    if not 0 <= test_fraction <= 1:
        raise ClaimedError(f"test_fraction: expected a value in [0, 1], got {test_fraction}")
    query = cohort_query(where, key, test_fraction, seed, split_column)
    from claimed_airflow.core import spark as sp

    if sp.backend_for(backend, table) == "local":
        data = sp.read_local(table)
        _check_key(key, data.column_names)
        result = sp.sql_local(data, query, "input")
        sp.write_local(result, output)
        rows_in, splits = data.num_rows, result.column(split_column).value_counts().to_pylist()
        counts = {item["values"]: item["counts"] for item in splits}
    else:
        spark = sp.session()
        spark.conf.set("spark.sql.runSQLOnFiles", "false")
        spark.conf.set("spark.sql.variable.substitute", "false")  # ${env:...} would read the environment
        frame = sp.read(spark, table)
        _check_key(key, frame.columns)
        frame.createOrReplaceTempView("input")
        try:
            result = spark.sql(query)
        except Exception as exc:  # ParseException, AnalysisException: one line naming the parameter
            raise ClaimedError(f"where: {str(exc).strip().splitlines()[0]}") from None
        sp.write(result, output)
        rows_in = frame.count()
        written = spark.read.parquet(str(output)).groupBy(split_column).count().collect()
        counts = {row[split_column]: row["count"] for row in written}
    train, test = counts.get("train", 0), counts.get("test", 0)
    return {"rows_in": rows_in, "rows_out": train + test, "train": train, "test": test}


def cohort_query(where: str, key: str, test_fraction: float, seed: int, split_column: str) -> str:
    """The Spark SQL query of the cohort and split; ``where`` must be one condition of allowed parts
    (``claimed_airflow.core.sql``), and the query runs as sqlglot writes it back from the checked tree."""
    from claimed_airflow.core.sql import check

    condition = check(where, "where", condition=True)
    threshold = "g" if test_fraction >= 1 else f"{int(test_fraction * 16**8):08x}"  # "g" sorts after every hex
    # equal-length lowercase hex strings compare like the numbers they spell, in Spark and DuckDB alike
    bucket = f"substr(sha2(concat('{int(seed)}:', CAST(`{key}` AS STRING)), 256), 1, 8)"
    query = (
        f"SELECT *, CASE WHEN {bucket} < '{threshold}' THEN 'test' ELSE 'train' END AS `{split_column}` "
        f"FROM input WHERE `{key}` IS NOT NULL AND ({condition})"
    )
    return check(query, "where")


def _check_key(key: str, columns: list[str]) -> None:
    require_columns(columns, [key], param="key")
