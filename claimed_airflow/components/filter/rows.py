"""Keep the rows of a table for which a safe boolean expression holds."""

from __future__ import annotations

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError


@component("filter")
def rows(table: InputPath, condition: str, output: OutputPath = "table.parquet") -> dict:
    """Filter a table (CSV, Parquet or JSON lines) by a boolean expression over its columns.

    Same expression language as ``transform.apply``, e.g. ``PatientSex == 'F' and PatientAge >= 18``.

    :param table: Input table.
    :param condition: Boolean expression; rows where it is true are kept.
    :param output: Output table (Parquet).
    """
    import numpy as np

    from claimed_airflow.core.expressions import evaluate
    from claimed_airflow.core.tables import read_table, write_table

    frame = read_table(table)
    mask = evaluate(condition, {c: frame[c] for c in frame.columns}, param="condition")
    if np.ndim(mask) == 0:
        raise ClaimedError(f"condition: {condition!r} does not depend on any column")
    kept = frame[np.asarray(mask, dtype=bool)]
    write_table(kept, output)
    return {"rows_in": len(frame), "rows_out": len(kept)}
