"""Run a Spark SQL query over a table."""

from __future__ import annotations

import re
import sys

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError

COMPONENT = "transform.spark_sql"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUERY_START = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)


@component("transform", cpu="2", memory="4Gi", operator="SparkSqlOperator")
def spark_sql(
    table: InputPath,
    query: str,
    view: str = "input",
    output: OutputPath = "result.parquet",
) -> dict:
    """Run a Spark SQL ``SELECT`` over a table (CSV, Parquet or JSON lines) and write the result as Parquet.

    The table is registered as the temporary view ``view``, e.g.
    ``SELECT sensor, avg(value) AS mean FROM input GROUP BY sensor``. Only one ``SELECT`` or
    ``WITH ... SELECT`` query is accepted, and reading files by path from SQL is switched off, so the
    query sees only the given table.

    :param table: Input table: file or folder (CSV with a header, Parquet, JSON lines).
    :param query: One Spark SQL query (SELECT or WITH) over the view.
    :param view: Name under which the table is visible in the query.
    :param output: Query result as a Parquet dataset folder.
    """
    if not _IDENTIFIER.match(view):
        raise ClaimedError(f"view: expected a plain identifier (letters, digits, _), got {view!r}")
    statement = query.strip().rstrip(";").strip()
    if not _QUERY_START.match(statement):
        raise ClaimedError(f"query: expected one SELECT (or WITH ... SELECT) query, got {query[:80]!r}")
    from claimed_airflow.core import spark as sp

    spark = sp.session(COMPONENT)
    spark.conf.set("spark.sql.runSQLOnFiles", "false")
    sp.read(spark, table).createOrReplaceTempView(view)
    try:
        result = spark.sql(statement)
    except Exception as exc:  # ParseException, AnalysisException: one line naming the parameter
        raise ClaimedError(f"query: {str(exc).strip().splitlines()[0]}") from None
    sp.write(result, output)
    return {"rows": sp.count(spark, output), "columns": len(result.columns)}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``spark-submit`` (engine ``spark``): ``claimed-airflow run`` for this component."""
    from claimed_airflow.cli import component_main

    return component_main(COMPONENT, argv)


if __name__ == "__main__":
    sys.exit(main())
