"""Screenshot of dicom_to_deployment in the Airflow UI, for the README and the documentation.

After the demo (a finished run in ./.airflow); tests/test_ui.py checks the same graph view shows every task:
    .venv/bin/python -m tests.ui.screenshot [--airflow-home .airflow] [-o docs/img/dicom_to_deployment.png]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from playwright.sync_api import sync_playwright

from claimed_airflow.demo import airflow_env
from tests.ui.airflow_ui import CHROMIUM_FLAGS, airflow_ui, chromium_path, open_dag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--airflow-home", default=".airflow")
    parser.add_argument("--dags-folder", default="dags")
    parser.add_argument("-o", "--output", default="docs/img/dicom_to_deployment.png")
    args = parser.parse_args()
    home = Path(args.airflow_home).resolve()
    env = airflow_env(home, Path(args.dags_folder).resolve(), home / "unused")
    env.pop("AIRFLOW__CLAIMED__OUTPUT_ROOT")
    with airflow_ui(env, home / "ui-logs") as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 820})
        graph_screenshot(page, base, "dicom_to_deployment", args.output)
        browser.close()
    print(f"wrote {args.output}")


def graph_screenshot(page, base: str, dag_id: str, output: str | Path) -> str:
    """Open a DAG's graph view, save a screenshot, return the graph's text (its task ids)."""
    open_dag(page, base, dag_id)
    page.goto(f"{base}/dags/{dag_id}?mode=graph", wait_until="networkidle")
    graph = page.get_by_role("button", name="Graph")
    if graph.count():
        graph.first.click()
        page.wait_for_timeout(3000)
    page.screenshot(path=str(output))
    return page.inner_text("body")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
