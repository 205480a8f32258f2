"""Run a Spark SQL query over a table (with Spark, or in-process with DuckDB for small inputs)."""

from __future__ import annotations

import re
from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@component("transform", cpu="2", memory="4Gi")
def spark_sql(
    table: InputPath,
    query: str,
    view: str = "input",
    backend: Literal["auto", "spark", "local"] = "auto",
    output: OutputPath = "result.parquet",
) -> dict:
    """Run a Spark SQL ``SELECT`` over a table (CSV, Parquet or JSON lines) and write the result as Parquet.

    The table is registered as the temporary view ``view``, e.g.
    ``SELECT sensor, avg(value) AS mean FROM input GROUP BY sensor``. Only one ``SELECT`` or
    ``WITH ... SELECT`` query of allowed parts is accepted (``claimed_airflow.core.sql``: no
    ``TRANSFORM ... USING``, Java, file or URL tables, DDL or commands), so the query sees only the given
    table. ``backend="auto"`` runs small tables in-process: the query is
    translated from Spark SQL to DuckDB's dialect (sqlglot) and run by DuckDB, no JVM to start; large
    tables, or any table when a Spark master is configured, go to Spark (see
    ``claimed_airflow.core.spark.backend_for``). A Spark function DuckDB lacks fails with a clear
    error on the local backend; ``backend="spark"`` then runs it.

    :param table: Input table: file or folder (CSV with a header, Parquet, JSON lines).
    :param query: One Spark SQL query (SELECT or WITH) over the view.
    :param view: Name under which the table is visible in the query.
    :param backend: ``auto`` (local when small and no Spark master is configured, else spark), ``spark`` or
        ``local`` (DuckDB in this process).
    :param output: Query result as a Parquet dataset folder.
    """
    if not _IDENTIFIER.match(view):
        raise ClaimedError(f"view: expected a plain identifier (letters, digits, _), got {view!r}")
    from claimed_airflow.core import spark as sp
    from claimed_airflow.core.sql import check

    statement = check(query, "query", views=(view,))  # the allow-list; what runs is what was checked
    if sp.backend_for(backend, table) == "local":
        result = sp.sql_local(sp.read_local(table), statement, view)
        sp.write_local(result, output)
        return {"rows": result.num_rows, "columns": result.num_columns}
    spark = sp.session()
    spark.conf.set("spark.sql.runSQLOnFiles", "false")
    spark.conf.set("spark.sql.variable.substitute", "false")  # ${env:...} would read the environment
    sp.read(spark, table).createOrReplaceTempView(view)
    try:
        result = spark.sql(statement)
    except Exception as exc:  # ParseException, AnalysisException: one line naming the parameter
        raise ClaimedError(f"query: {str(exc).strip().splitlines()[0]}") from None
    sp.write(result, output)
    return {"rows": sp.count(spark, output), "columns": len(result.columns)}
