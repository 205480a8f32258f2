"""Fit a linear trend per group of a time series with Spark (or in-process with pandas for small inputs)."""

from __future__ import annotations

from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.tables import require_columns

SECONDS_PER_DAY = 86400.0


@component("analyze", cpu="2", memory="4Gi")
def spark_ts_trends(
    table: InputPath,
    time_column: str,
    value_column: str,
    group_by: list[str] | None = None,
    period: Literal["none", "hour", "day", "week", "month"] = "none",
    min_points: int = 2,
    backend: Literal["auto", "spark", "local"] = "auto",
    output: OutputPath = "trends.parquet",
) -> dict:
    """Fit a least-squares linear trend of a value over time for each group of a table, with Spark.

    One row per group (``group_by`` columns): ``points``, ``start``, ``end``, ``first``, ``last``,
    ``mean``, ``min``, ``max``, ``slope_per_day`` (value units per day), ``intercept`` (value at
    ``start``), ``r2`` (share of variance the line explains) and ``direction`` (``up``, ``down``,
    ``flat``). With ``period`` the values are first averaged per hour/day/week/month. Groups with
    fewer than ``min_points`` points get no slope and direction ``unknown``. ``backend="auto"`` fits
    small tables in-process with pandas (no JVM to start) and large ones with Spark (see
    ``claimed_airflow.core.spark.backend_for``).

    :param table: Input table: file or folder (CSV with a header, Parquet, JSON lines).
    :param time_column: Column with the time (timestamp, date or ISO 8601 text).
    :param value_column: Numeric column whose trend is fitted.
    :param group_by: Columns that identify one series (e.g. ``sensor``); none: the whole table is one series.
    :param period: Average the values per period before fitting (``none`` keeps every row).
    :param min_points: Fewest points for a trend.
    :param backend: ``auto`` (local when small and no Spark master is configured, else spark), ``spark`` or
        ``local`` (pandas in this process).
    :param output: One row per group as a Parquet dataset folder.
    """
    if min_points < 2:
        raise ClaimedError(f"min_points: a line needs at least 2 points, got {min_points}")
    from claimed_airflow.core import spark as sp

    groups = list(group_by or [])
    if sp.backend_for(backend, table) == "local":
        data = sp.read_local(table)
        _check_columns(data.column_names, time_column, value_column, groups)
        result = _trends_local(data.to_pandas(), time_column, value_column, groups, period, min_points)
        sp.write_local(pa_table(result), output)
        return _summary(result["direction"].value_counts().to_dict())
    from pyspark.sql import functions as F

    spark = sp.session()
    frame = sp.read(spark, table)
    _check_columns(frame.columns, time_column, value_column, groups)
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
    )
    result = result.orderBy(*groups) if groups else result.coalesce(1)
    sp.write(result, output)
    written = spark.read.parquet(str(output)).groupBy("direction").count().collect()
    return _summary({row["direction"]: row["count"] for row in written})


def _check_columns(columns: list[str], time_column: str, value_column: str, groups: list[str]) -> None:
    for param, names in (("time_column", [time_column]), ("value_column", [value_column]), ("group_by", groups)):
        require_columns(columns, names, param=param)


def _summary(directions: dict) -> dict:
    return {
        "groups": sum(directions.values()),
        "up": directions.get("up", 0),
        "down": directions.get("down", 0),
        "flat": directions.get("flat", 0),
    }


def pa_table(frame):
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


def _trends_local(frame, time_column: str, value_column: str, groups: list[str], period: str, min_points: int):
    """The Spark query above in pandas: the same columns, types and rules."""
    import numpy as np
    import pandas as pd

    times = pd.to_datetime(frame[time_column], utc=True, errors="coerce")
    values = pd.to_numeric(frame[value_column], errors="coerce").astype("float64")
    points = frame[groups].assign(_t=times, _y=values)
    points = points[points["_t"].notna() & points["_y"].notna()]
    if period != "none":
        # date_trunc: weeks start on Monday, months on the 1st
        unit = {"hour": "h", "day": "D"}.get(period)
        floor = points["_t"].dt.floor(unit) if unit else None
        if period == "week":
            floor = points["_t"].dt.floor("D") - pd.to_timedelta(points["_t"].dt.weekday, unit="D")
        elif period == "month":
            floor = points["_t"].dt.tz_localize(None).dt.to_period("M").dt.to_timestamp().dt.tz_localize("UTC")
        points = points.assign(_t=floor).groupby([*groups, "_t"], dropna=False, as_index=False)["_y"].mean()
    points = points.assign(_x=(points["_t"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1) / SECONDS_PER_DAY)
    rows = []
    keyed = points.groupby(groups, dropna=False, sort=True) if groups else [((), points)]
    for key, part in keyed:
        part = part.sort_values("_t", kind="stable")
        x, y = part["_x"].to_numpy(), part["_y"].to_numpy()
        n, var = len(y), float(np.var(x))
        row = dict(zip(groups, key if isinstance(key, tuple) else (key,), strict=True))
        row.update(points=n, start=part["_t"].iloc[0], end=part["_t"].iloc[-1], first=y[0], last=y[-1])
        row.update(mean=y.mean(), min=y.min(), max=y.max())
        slope = intercept = r2 = None
        if n >= min_points and var > 0:
            slope = float(np.mean((x - x.mean()) * (y - y.mean())) / var)
            intercept = float(y.mean() - slope * (x.mean() - x.min()))
            r2 = 1.0 if np.std(y) == 0 else float(np.corrcoef(x, y)[0, 1] ** 2)
        direction = "unknown" if slope is None else "up" if slope > 0 else "down" if slope < 0 else "flat"
        row.update(slope_per_day=slope, intercept=intercept, r2=r2, direction=direction)
        rows.append(row)
    columns = [*groups, "points", "start", "end", "first", "last", "mean", "min", "max"]
    result = pd.DataFrame(rows, columns=[*columns, "slope_per_day", "intercept", "r2", "direction"])
    result["points"] = result["points"].astype("int64")
    for column in ("slope_per_day", "intercept", "r2"):
        result[column] = result[column].astype("float64")
    return result
