"""Draw a random sample of a table's rows with Spark (or in-process for small inputs)."""

from __future__ import annotations

from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError


@component("filter", cpu="2", memory="4Gi")
def spark_sample(
    table: InputPath,
    fraction: float,
    seed: int = 42,
    with_replacement: bool = False,
    backend: Literal["auto", "spark", "local"] = "auto",
    output: OutputPath = "sample.parquet",
) -> dict:
    """Keep a random fraction of the rows of a table (CSV, Parquet or JSON lines) with Spark.

    Each row is kept with probability ``fraction`` (Bernoulli sampling; Poisson with replacement), so
    the sample size is close to, not exactly, ``fraction`` times the rows. The same seed and input
    give the same sample on the same backend (for Spark: the same version and partitioning); the two
    backends draw different samples. ``backend="auto"`` samples small tables in-process (NumPy, no JVM
    to start) and large ones with Spark (see ``claimed_airflow.core.spark.backend_for``).

    :param table: Input table: file or folder (CSV with a header, Parquet, JSON lines).
    :param fraction: Expected share of rows to keep, in (0, 1]; with replacement, the expected times each row is drawn.
    :param seed: Random seed.
    :param with_replacement: Sample with replacement (a row can appear more than once).
    :param backend: ``auto`` (local when small and no Spark master is configured, else spark), ``spark`` or
        ``local`` (NumPy's generator in this process).
    :param output: Sampled rows as a Parquet dataset folder.
    """
    if fraction <= 0 or (fraction > 1 and not with_replacement):
        raise ClaimedError(f"fraction: expected a value in (0, 1], got {fraction}")
    from claimed_airflow.core import spark as sp

    if sp.backend_for(backend, table) == "local":
        import numpy as np

        data = sp.read_local(table)
        rng = np.random.default_rng(seed)
        if with_replacement:
            rows = np.repeat(np.arange(data.num_rows), rng.poisson(fraction, data.num_rows))
        else:
            rows = np.flatnonzero(rng.random(data.num_rows) < fraction)
        sp.write_local(data.take(rows), output)
        return {"rows_in": data.num_rows, "rows_out": len(rows)}
    spark = sp.session()
    frame = sp.read(spark, table)
    sp.write(frame.sample(withReplacement=with_replacement, fraction=fraction, seed=seed), output)
    return {"rows_in": frame.count(), "rows_out": sp.count(spark, output)}
