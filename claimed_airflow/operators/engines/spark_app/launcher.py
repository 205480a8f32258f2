"""The application that spark-submit runs for every component (engine ``spark``).

``spark-submit spark_launcher.py <component> --param=value ... --output-root <root> --dag-id ...`` is
``claimed-airflow run <component> ...`` inside the driver, so a Spark component is just a component: it
takes the SparkSession that spark-submit configured through ``claimed_airflow.core.spark.session``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from claimed_airflow.cli import main as cli

    return cli(["run", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
