"""Draw a random sample of a table's rows with Spark."""

from __future__ import annotations

import sys

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError

COMPONENT = "filter.spark_sample"


@component("filter", cpu="2", memory="4Gi", operator="SparkSampleOperator")
def spark_sample(
    table: InputPath,
    fraction: float,
    seed: int = 42,
    with_replacement: bool = False,
    output: OutputPath = "sample.parquet",
) -> dict:
    """Keep a random fraction of the rows of a table (CSV, Parquet or JSON lines) with Spark.

    Each row is kept with probability ``fraction`` (Bernoulli sampling; Poisson with replacement), so
    the sample size is close to, not exactly, ``fraction`` times the rows. The same seed and input
    give the same sample on the same Spark version and partitioning.

    :param table: Input table: file or folder (CSV with a header, Parquet, JSON lines).
    :param fraction: Expected share of rows to keep, in (0, 1]; with replacement, the expected times each row is drawn.
    :param seed: Random seed.
    :param with_replacement: Sample with replacement (a row can appear more than once).
    :param output: Sampled rows as a Parquet dataset folder.
    """
    if fraction <= 0 or (fraction > 1 and not with_replacement):
        raise ClaimedError(f"fraction: expected a value in (0, 1], got {fraction}")
    from claimed_airflow.core import spark as sp

    spark = sp.session(COMPONENT)
    frame = sp.read(spark, table)
    sp.write(frame.sample(withReplacement=with_replacement, fraction=fraction, seed=seed), output)
    return {"rows_in": frame.count(), "rows_out": sp.count(spark, output)}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``spark-submit`` (engine ``spark``): ``claimed-airflow run`` for this component."""
    from claimed_airflow.cli import component_main

    return component_main(COMPONENT, argv)


if __name__ == "__main__":
    sys.exit(main())
