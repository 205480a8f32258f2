"""Benchmark: CSV -> Parquet through transform.spark_csv_to_parquet against plain pyarrow, same run.

A synthetic sensor table (time, site, sensor, value, status) of N rows is written as CSV, then
converted by: plain pyarrow (``pyarrow.csv.read_csv`` + ``pyarrow.parquet.write_table``), the
component with ``backend="pyarrow"``, the component with Spark in-process (``local[*]``; the session
start is timed separately, as it is paid once per worker process), and optionally the component
through ``spark-submit`` (what engine=spark runs: JVM start included). Each row count is measured
``--repeat`` times and the median is reported, smallest sizes first, to show where Spark catches up.

usage: .venv/bin/python tests/benchmarks/spark_csv_to_parquet.py [--rows 10000,100000,1000000]
       [--repeat 3] [--spark-submit]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def make_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-01-01T00:00:00")
    frame = pd.DataFrame(
        {
            "time": (start + rng.integers(0, 365 * 86400, rows).astype("timedelta64[s]")).astype(str),
            "site": rng.choice(["plant-a", "plant-b", "plant-c"], rows),
            "sensor": rng.choice([f"s{i:03d}" for i in range(200)], rows),
            "value": rng.normal(50, 10, rows).round(4),
            "status": rng.integers(0, 4, rows),
        }
    )
    frame.to_csv(path, index=False)


def timed(function, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def plain_pyarrow(csv: Path, out: Path) -> None:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    pq.write_table(pcsv.read_csv(csv), out, compression="snappy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--spark-submit", action="store_true", help="also time `spark-submit <module>.py` once")
    args = parser.parse_args()

    from claimed_airflow.core import spark as sp
    from claimed_airflow.core.runner import run

    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    started = time.perf_counter()
    sp.session("benchmark")
    print(f"Spark session start (once per process): {time.perf_counter() - started:.1f} s")
    print(f"{'rows':>9} {'CSV MB':>7} {'pyarrow':>9} {'component/pyarrow':>18} {'component/spark':>16}", end="")
    print(f" {'spark-submit':>13}" if args.spark_submit else "")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for rows in [int(r) for r in args.rows.split(",")]:
            csv = tmp / f"table-{rows}.csv"
            make_csv(csv, rows)
            times: dict[str, list[float]] = {"arrow": [], "component_arrow": [], "component_spark": []}
            for i in range(args.repeat):
                root = str(tmp / f"out-{rows}-{i}")
                times["arrow"].append(timed(plain_pyarrow, csv, tmp / f"plain-{rows}-{i}.parquet")[0])
                arrow = {"table": str(csv), "backend": "pyarrow"}
                times["component_arrow"].append(timed(run, "transform.spark_csv_to_parquet", arrow, root=root)[0])
                elapsed, result = timed(run, "transform.spark_csv_to_parquet", {"table": str(csv)}, root=root)
                times["component_spark"].append(elapsed)
                assert result["rows"] == rows, result
            line = f"{rows:>9} {csv.stat().st_size / 1e6:>7.1f}"
            line += f" {statistics.median(times['arrow']):>8.2f}s"
            line += f" {statistics.median(times['component_arrow']):>17.2f}s"
            line += f" {statistics.median(times['component_spark']):>15.2f}s"
            if args.spark_submit:
                module = Path(sys.modules["claimed_airflow.components.transform.spark_csv_to_parquet"].__file__)
                command = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[*]"]
                command += ["--conf", "spark.ui.enabled=false", str(module), f"--table={csv}"]
                command += [f"--output-root={tmp / 'submit'}"]
                env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
                elapsed, _ = timed(subprocess.run, command, check=True, capture_output=True, env=env)
                line += f" {elapsed:>12.2f}s"
            print(line, flush=True)


if __name__ == "__main__":
    main()
