"""Add or replace a column computed from a safe expression over the other columns."""

from __future__ import annotations

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError


@component("transform")
def apply(
    table: InputPath,
    column: str,
    expression: str,
    output: OutputPath = "table.parquet",
) -> dict:
    """Compute ``column = expression`` on a table (CSV, Parquet or JSON lines) and write it as Parquet.

    The expression uses column names, numbers, strings, arithmetic, comparisons, ``and``/``or``/``not``,
    ``x if cond else y``, ``in [...]`` and abs/min/max/round/log. Nothing else is evaluated: no
    attribute access, no calls of arbitrary functions.

    :param table: Input table.
    :param column: Name of the column to add or replace.
    :param expression: Expression over the columns, e.g. ``age >= 25`` or ``amount / duration``.
    :param output: Output table (Parquet).
    """
    from claimed_airflow.core.expressions import evaluate
    from claimed_airflow.core.tables import read_table, write_table

    frame = read_table(table)
    if not column:
        raise ClaimedError("column: must not be empty")
    frame[column] = evaluate(expression, {c: frame[c] for c in frame.columns}, param="expression")
    write_table(frame, output)
    return {"rows": len(frame)}
