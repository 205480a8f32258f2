"""Filter operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class FilterOperator(ClaimedOperator):
    """Filter a table (CSV, Parquet or JSON lines) by a boolean expression over its columns.

    Same expression language as ``transform.apply``, e.g. ``PatientSex == 'F' and PatientAge >=
    18``.

    Runs the ``filter.rows`` component. Outputs (XCom keys): output.

    :param table: Input table.
    :type table: str
    :param condition: Boolean expression; rows where it is true are kept.
    :type condition: str
    """

    component = "filter.rows"
    component_fields = ("table", "condition")
    ui_color = "#f1f8e9"
    template_fields = (*component_fields, "engine", "output_root")

    def __init__(
        self,
        *,
        table: str,
        condition: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.condition = condition
