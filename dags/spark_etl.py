"""
### Spark ETL

CLAIMED's Spark components on a time series of sensor readings:

1. **csv_to_parquet** converts the CSV to a Parquet dataset,
2. **sample** draws a seeded random sample of the rows (e.g. for a quick look or a test set),
3. **daily_means** averages the readings per sensor and day with Spark SQL,
4. **trends** fits a linear trend per sensor (slope per day, R², up/down/flat),
5. **trends_csv** writes the trends as one CSV file for people and spreadsheets.

With `engine=spark` (the default here) every task is a `spark-submit` of the component's module
through the apache.spark provider's SparkSubmitOperator, on the master of the `spark_default`
connection: `AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "local[*]"}'` runs it on
one machine. `engine=local` runs the same components in the worker process, where each one's
`backend="auto"` picks the engine: in-process without a JVM (pyarrow, pandas, DuckDB) for small
tables when no Spark master is configured (`CLAIMED_SPARK_MASTER`), Spark otherwise.
The sample data is synthetic: two sensors of plant-a with a rising and a falling trend, one flat
sensor of plant-b, two readings a day for 60 days.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, Param

from claimed_airflow.operators import (
    SparkCsvToParquetTransformOperator,
    SparkParquetToCsvTransformOperator,
    SparkSampleFilterOperator,
    SparkSqlTransformOperator,
    SparkTimeSeriesTrendsAnalyzeOperator,
)

SAMPLE = Path(__file__).resolve().parent / "sample_data" / "sensors" / "sensors.csv"

with DAG(
    dag_id="spark_etl",
    description="CSV to Parquet, sample, SQL and time-series trends with Spark.",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["claimed", "spark", "etl"],
    default_args={"owner": "claimed", "engine": "{{ params.engine }}"},
    params={
        "engine": Param(
            "spark",
            type="string",
            enum=["spark", "local", "kubernetes", "default"],
            description="spark: spark-submit on spark_default; local: pyspark in the worker; default: as configured.",
        ),
        "csv": Param(str(SAMPLE), type="string", description="CSV file or folder (columns time, site, sensor, value)."),
        "fraction": Param(0.25, type="number", exclusiveMinimum=0, maximum=1, description="Share of rows sampled."),
    },
) as dag:
    parquet = SparkCsvToParquetTransformOperator(task_id="csv_to_parquet", table="{{ params.csv }}")
    sample = SparkSampleFilterOperator(
        task_id="sample", table=parquet.output["output"], fraction="{{ params.fraction }}"
    )
    daily = SparkSqlTransformOperator(
        task_id="daily_means",
        table=parquet.output["output"],
        query="SELECT site, sensor, date_trunc('day', time) AS day, avg(value) AS value, count(*) AS readings "
        "FROM input GROUP BY site, sensor, date_trunc('day', time)",
    )
    trends = SparkTimeSeriesTrendsAnalyzeOperator(
        task_id="trends",
        table=daily.output["output"],
        time_column="day",
        value_column="value",
        group_by=["site", "sensor"],
    )
    report = SparkParquetToCsvTransformOperator(task_id="trends_csv", table=trends.output["output"])
