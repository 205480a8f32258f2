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
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

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


class SparkSampleOperator(ClaimedOperator):
    """Keep a random fraction of the rows of a table (CSV, Parquet or JSON lines) with Spark.

    Each row is kept with probability ``fraction`` (Bernoulli sampling; Poisson with replacement),
    so the sample size is close to, not exactly, ``fraction`` times the rows. The same seed and
    input give the same sample on the same Spark version and partitioning.

    Runs the ``filter.spark_sample`` component. Outputs (XCom keys): output.

    :param table: Input table: file or folder (CSV with a header, Parquet, JSON lines).
    :type table: str
    :param fraction: Expected share of rows to keep, in (0, 1]; with replacement, the expected times
        each row is drawn.
    :type fraction: float
    :param seed: Random seed.
    :type seed: int
    :param with_replacement: Sample with replacement (a row can appear more than once).
    :type with_replacement: bool
    """

    component = "filter.spark_sample"
    component_fields = ("table", "fraction", "seed", "with_replacement")
    ui_color = "#f1f8e9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        table: str,
        fraction: float,
        seed: int = 42,
        with_replacement: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.fraction = fraction
        self.seed = seed
        self.with_replacement = with_replacement
