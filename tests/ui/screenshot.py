"""Screenshot of dicom_to_deployment in the Airflow UI, for the README.

Run the demo first (it leaves a finished run in ./.airflow), then:
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
        open_dag(page, base, "dicom_to_deployment")
        page.goto(f"{base}/dags/dicom_to_deployment?mode=graph", wait_until="networkidle")
        graph = page.get_by_role("button", name="Graph")
        if graph.count():
            graph.first.click()
            page.wait_for_timeout(3000)
        page.screenshot(path=args.output)
        browser.close()
    print(f"wrote {args.output}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
