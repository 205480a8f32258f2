"""Benchmark: CSV -> Parquet through transform.spark_csv_to_parquet against plain pyarrow, same run.

A synthetic sensor table (time, site, sensor, value, status) of N rows is written as CSV, then
converted by: plain pyarrow (``pyarrow.csv.read_csv`` + ``pyarrow.parquet.write_table``), the
component with ``backend="local"`` (pyarrow in-process), the component with ``backend="spark"``
in-process (``local[*]``; the session start is timed separately, as it is paid once per worker
process), the component with ``backend="auto"`` (the default: it picks one of the two), and
optionally the component through ``spark-submit`` (what engine=spark runs: JVM start included). Each
row count is measured ``--repeat`` times and the median is reported, smallest sizes first. The last
column is auto's time over the faster of local and spark (the goal: at most 1.2).

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
    print(f"{'rows':>9} {'CSV MB':>7} {'pyarrow':>9} {'local':>8} {'spark':>8} {'auto':>8} {'auto/best':>9}", end="")
    print(f" {'spark-submit':>13}" if args.spark_submit else "")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for rows in [int(r) for r in args.rows.split(",")]:
            csv = tmp / f"table-{rows}.csv"
            make_csv(csv, rows)
            times: dict[str, list[float]] = {"arrow": [], "local": [], "spark": [], "auto": []}
            for i in range(args.repeat):
                root = str(tmp / f"out-{rows}-{i}")
                times["arrow"].append(timed(plain_pyarrow, csv, tmp / f"plain-{rows}-{i}.parquet")[0])
                for backend in ("local", "spark", "auto"):
                    arguments = {"table": str(csv), "backend": backend}
                    elapsed, result = timed(run, "transform.spark_csv_to_parquet", arguments, root=root)
                    times[backend].append(elapsed)
                    assert result["rows"] == rows, result
            median = {name: statistics.median(values) for name, values in times.items()}
            line = f"{rows:>9} {csv.stat().st_size / 1e6:>7.1f} {median['arrow']:>8.2f}s"
            line += "".join(f" {median[name]:>7.2f}s" for name in ("local", "spark", "auto"))
            line += f" {median['auto'] / min(median['local'], median['spark']):>9.2f}"
            if args.spark_submit:
                module = Path(sys.modules["claimed_airflow.components.transform.spark_csv_to_parquet"].__file__)
                command = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[*]"]
                command += ["--conf", "spark.ui.enabled=false", str(module), f"--table={csv}"]
                command += [f"--output-root={tmp / 'submit'}"]
                env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
                elapsed, _ = timed(subprocess.run, command, check=True, capture_output=True, env=env)
                line += f" {elapsed:>12.2f}s"
            print(line, flush=True)
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
