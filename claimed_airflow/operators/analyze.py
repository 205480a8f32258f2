"""Analyze operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class SparkTimeSeriesTrendsAnalyzeOperator(ClaimedOperator):
    """Fit a least-squares linear trend of a value over time for each group of a table, with Spark.

    One row per group (``group_by`` columns): ``points``, ``start``, ``end``, ``first``, ``last``,
    ``mean``, ``min``, ``max``, ``slope_per_day`` (value units per day), ``intercept`` (value at
    ``start``), ``r2`` (share of variance the line explains) and ``direction`` (``up``, ``down``,
    ``flat``). With ``period`` the values are first averaged per hour/day/week/month. Groups with
    fewer than ``min_points`` points get no slope and direction ``unknown``. ``backend="auto"`` fits
    small tables in-process with pandas (no JVM to start) and large ones with Spark (see
    ``claimed_airflow.core.spark.backend_for``).

    Runs the ``analyze.spark_ts_trends`` component. Outputs (XCom keys): output.

    :param table: Input table: file or folder (CSV with a header, Parquet, JSON lines).
    :type table: str
    :param time_column: Column with the time (timestamp, date or ISO 8601 text).
    :type time_column: str
    :param value_column: Numeric column whose trend is fitted.
    :type value_column: str
    :param group_by: Columns that identify one series (e.g. ``sensor``); none: the whole table is
        one series.
    :type group_by: list[str] | None
    :param period: Average the values per period before fitting (``none`` keeps every row).
    :type period: str
    :param min_points: Fewest points for a trend.
    :type min_points: int
    :param backend: ``auto`` (local when small and no Spark master is configured, else spark),
        ``spark`` or ``local`` (pandas in this process).
    :type backend: str
    """

    component = "analyze.spark_ts_trends"
    component_fields = ("table", "time_column", "value_column", "group_by", "period", "min_points", "backend")
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        table: str,
        time_column: str,
        value_column: str,
        group_by: list[str] | None = None,
        period: str = "none",
        min_points: int = 2,
        backend: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.time_column = time_column
        self.value_column = value_column
        self.group_by = group_by
        self.period = period
        self.min_points = min_points
        self.backend = backend
