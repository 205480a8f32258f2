"""The Airflow UI, in headless Chromium: the trigger form of dicom_to_deployment shows our Params, and the graph
every task. One API server, DAG processor and browser serve both tests."""

from __future__ import annotations

import os

import pytest

from tests.ui.airflow_ui import CHROMIUM_FLAGS, airflow_ui, chromium_path, open_dag


@pytest.fixture(scope="module")
def ui(airflow_home, tmp_path_factory):
    """(the UI's base URL, a Chromium browser) for this module."""
    if not chromium_path():
        pytest.skip("Chromium is not installed (`apt-get install chromium`; .ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (test extra)")
    logs = tmp_path_factory.mktemp("ui") / "logs"
    with airflow_ui(dict(os.environ), logs) as base, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield base, browser
        browser.close()


@pytest.mark.e2e
def test_trigger_form_shows_the_dag_params(ui, tmp_path):
    base, browser = ui
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    open_dag(page, base, "dicom_to_deployment")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / "trigger.png"))
    text = dialog.inner_text()
    for description in ("Blessing: deploy if the accuracy on the test split >= this.", "Training epochs."):
        assert description in text, text
    page.close()


@pytest.mark.e2e
def test_the_graph_shows_every_flagship_task(ui, tmp_path):
    """The graph view README's picture is taken from (``python -m tests.ui.screenshot`` writes
    docs/img/dicom_to_deployment.png) shows every task of the current flagship DAG."""
    from claimed_airflow.version_compat import DagBag
    from tests.conftest import ROOT
    from tests.ui.screenshot import graph_screenshot

    base, browser = ui
    dag = DagBag(dag_folder=str(ROOT / "dags" / "dicom_to_deployment.py")).dags["dicom_to_deployment"]
    output = tmp_path / "dicom_to_deployment.png"
    page = browser.new_page(viewport={"width": 1500, "height": 820})
    text = graph_screenshot(page, base, "dicom_to_deployment", output)
    page.close()
    missing = [task_id for task_id in dag.task_ids if task_id not in text]
    assert not missing, f"tasks not shown in the graph: {missing}"
    assert output.read_bytes().startswith(b"\x89PNG")
