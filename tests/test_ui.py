"""The Airflow UI, in headless Chromium: the trigger form of dicom_to_deployment shows our Params."""

from __future__ import annotations

import os

import pytest

from tests.ui.airflow_ui import CHROMIUM_FLAGS, airflow_ui, chromium_path, open_dag


@pytest.mark.e2e
def test_trigger_form_shows_the_dag_params(airflow_home, tmp_path):
    if not chromium_path():
        pytest.skip("Chromium is not installed (`apt-get install chromium`; .ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (test extra)")
    with airflow_ui(dict(os.environ), tmp_path / "logs") as base, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_dag(page, base, "dicom_to_deployment")
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.wait_for(timeout=30_000)
        page.screenshot(path=str(tmp_path / "trigger.png"))
        text = dialog.inner_text()
        for description in ("Blessing: deploy if the accuracy on the test split >= this.", "Training epochs."):
            assert description in text, text
        browser.close()


@pytest.mark.e2e
def test_documentation_screenshot_shows_every_flagship_task(airflow_home, tmp_path):
    """Regenerates docs/img/dicom_to_deployment.png (README's picture) from the current flagship DAG."""
    if not chromium_path():
        pytest.skip("Chromium is not installed (`apt-get install chromium`; .ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (test extra)")
    from claimed_airflow.version_compat import DagBag
    from tests.conftest import ROOT
    from tests.ui.screenshot import graph_screenshot

    dag = DagBag(dag_folder=str(ROOT / "dags" / "dicom_to_deployment.py")).dags["dicom_to_deployment"]
    output = tmp_path / "dicom_to_deployment.png"
    with airflow_ui(dict(os.environ), tmp_path / "logs") as base, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 820})
        text = graph_screenshot(page, base, "dicom_to_deployment", output)
        browser.close()
    missing = [task_id for task_id in dag.task_ids if task_id not in text]
    assert not missing, f"tasks not shown in the graph: {missing}"
    assert output.read_bytes().startswith(b"\x89PNG")
    (ROOT / "docs" / "img" / "dicom_to_deployment.png").write_bytes(output.read_bytes())
