"""Fit a linear trend per group of a time series with Spark."""

from __future__ import annotations

import sys
from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError

COMPONENT = "analyze.spark_ts_trends"
SECONDS_PER_DAY = 86400.0


@component("analyze", cpu="2", memory="4Gi", operator="SparkTimeSeriesTrendsOperator")
def spark_ts_trends(
    table: InputPath,
    time_column: str,
    value_column: str,
    group_by: list[str] | None = None,
    period: Literal["none", "hour", "day", "week", "month"] = "none",
    min_points: int = 2,
    output: OutputPath = "trends.parquet",
) -> dict:
    """Fit a least-squares linear trend of a value over time for each group of a table, with Spark.

    One row per group (``group_by`` columns): ``points``, ``start``, ``end``, ``first``, ``last``,
    ``mean``, ``min``, ``max``, ``slope_per_day`` (value units per day), ``intercept`` (value at
    ``start``), ``r2`` (share of variance the line explains) and ``direction`` (``up``, ``down``,
    ``flat``). With ``period`` the values are first averaged per hour/day/week/month. Groups with
    fewer than ``min_points`` points get no slope and direction ``unknown``.

    :param table: Input table: file or folder (CSV with a header, Parquet, JSON lines).
    :param time_column: Column with the time (timestamp, date or ISO 8601 text).
    :param value_column: Numeric column whose trend is fitted.
    :param group_by: Columns that identify one series (e.g. ``sensor``); none: the whole table is one series.
    :param period: Average the values per period before fitting (``none`` keeps every row).
    :param min_points: Fewest points for a trend.
    :param output: One row per group as a Parquet dataset folder.
    """
    if min_points < 2:
        raise ClaimedError(f"min_points: a line needs at least 2 points, got {min_points}")
    from pyspark.sql import functions as F

    from claimed_airflow.core import spark as sp

    spark = sp.session(COMPONENT)
    frame = sp.read(spark, table)
    groups = list(group_by or [])
    for param, names in (("time_column", [time_column]), ("value_column", [value_column]), ("group_by", groups)):
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise ClaimedError(f"{param}: no column {', '.join(missing)}; columns: {', '.join(frame.columns)}")
    points = frame.select(
        *groups,
        F.to_timestamp(F.col(time_column)).alias("_t"),
        F.col(value_column).cast("double").alias("_y"),
    ).where(F.col("_t").isNotNull() & F.col("_y").isNotNull() & ~F.isnan("_y"))
    if period != "none":
        points = points.groupBy(*groups, F.date_trunc(period, "_t").alias("_t")).agg(F.avg("_y").alias("_y"))
    points = points.withColumn("_x", F.col("_t").cast("long") / SECONDS_PER_DAY)
    stats = points.groupBy(*groups).agg(
        F.count("_y").alias("points"),
        F.min("_t").alias("start"),
        F.max("_t").alias("end"),
        F.min_by("_y", "_t").alias("first"),
        F.max_by("_y", "_t").alias("last"),
        F.avg("_y").alias("mean"),
        F.min("_y").alias("min"),
        F.max("_y").alias("max"),
        F.avg("_x").alias("_mx"),
        F.min("_x").alias("_x0"),
        F.covar_pop("_x", "_y").alias("_cov"),
        F.var_pop("_x").alias("_var"),
        F.corr("_x", "_y").alias("_corr"),
    )
    enough = (F.col("points") >= min_points) & (F.col("_var") > 0)
    slope = F.when(enough, F.col("_cov") / F.col("_var"))
    result = (
        stats.withColumn("slope_per_day", slope)
        .withColumn("intercept", F.when(enough, F.col("mean") - slope * (F.col("_mx") - F.col("_x0"))))
        # a constant series has no correlation (NaN); the flat line fits it exactly
        .withColumn("r2", F.when(enough, F.nanvl(F.coalesce(F.col("_corr"), F.lit(float("nan"))), F.lit(1.0)) ** 2))
        .withColumn(
            "direction",
            F.when(~enough, F.lit("unknown"))
            .when(F.col("slope_per_day") > 0, F.lit("up"))
            .when(F.col("slope_per_day") < 0, F.lit("down"))
            .otherwise(F.lit("flat")),
        )
        .drop("_mx", "_x0", "_cov", "_var", "_corr")
        .orderBy(*groups)
    )
    if not groups:
        result = result.coalesce(1)
    sp.write(result, output)
    written = spark.read.parquet(str(output)).groupBy("direction").count().collect()
    directions = {row["direction"]: row["count"] for row in written}
    return {
        "groups": sum(directions.values()),
        "up": directions.get("up", 0),
        "down": directions.get("down", 0),
        "flat": directions.get("flat", 0),
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``spark-submit`` (engine ``spark``): ``claimed-airflow run`` for this component."""
    from claimed_airflow.cli import component_main

    return component_main(COMPONENT, argv)


if __name__ == "__main__":
    sys.exit(main())
