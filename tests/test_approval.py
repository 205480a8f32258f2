"""The flagship's approval task: what the reviewer sees, no wait when not required, the refusal on old Airflow."""

from __future__ import annotations

import importlib
import json
import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from claimed_airflow.operators import approval

pytestmark = pytest.mark.skipif(not approval.HAS_HITL, reason="human-in-the-loop needs Airflow 3.1+")


@pytest.fixture
def metric_files(tmp_path):
    files = {
        "metrics": {"accuracy": 0.8125, "count": 16},
        "fairness": {"biased": 1, "attributes": {"PatientSex": {"disparate_impact": 0.72, "biased": True}}},
        "robustness": {"min_accuracy": 0.5, "attacks": {"fgsm_0.05": 0.625}},
    }
    for name, data in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    return {name: str(tmp_path / f"{name}.json") for name in files}


def operator(metric_files, required="True", **more):
    return approval.ModelApprovalOperator(
        task_id="approval",
        required=required,
        links={"confusion matrix": "/data/run 1/confusion_matrix.png", "LIME overlays": "s3://b/lime"},
        **metric_files,
        **more,
    )


def test_the_reviewer_sees_the_numbers_and_links_and_the_task_awaits_input(metric_files, monkeypatch):
    from airflow.providers.standard.operators import hitl

    seen = {}
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **detail: seen.update(detail))
    task = operator(metric_files)
    ctx = {"task_instance": SimpleNamespace(id="ti-1")}
    with pytest.raises(BaseException) as caught:  # TaskAwaitingInput (3.3+) or TaskDeferred (3.1, 3.2)
        task.execute(ctx)
    assert type(caught.value).__name__ in ("TaskAwaitingInput", "TaskDeferred")
    assert seen["options"] == ["Approve", "Reject"] and seen["ti_id"] == "ti-1"
    body = seen["body"]
    assert "| accuracy | 0\\.8125 |" in body
    assert "| attributes\\_PatientSex\\_disparate\\_impact | 0\\.72 |" in body
    assert "| min\\_accuracy | 0\\.5 |" in body and "| attacks\\_fgsm\\_0\\.05 | 0\\.625 |" in body
    assert "[confusion matrix](<file:///data/run%201/confusion_matrix.png>)" in body
    assert "[LIME overlays](<s3://b/lime>)" in body


def test_values_from_files_are_not_markup(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"<img src=x onerror=alert(1)>": "[click](javascript:alert(1))"}))
    body = approval.approval_body(approval.read_sections(str(tmp_path / "m.json"), None, None), {})
    assert not re.search(r"(?<!\\)<img", body) and "](javascript" not in body  # escaped, never raw
    assert "\\<img src=x onerror=alert\\(1\\)\\>" in body


def test_not_required_passes_at_once(metric_files, monkeypatch):
    from airflow.providers.standard.operators import hitl

    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **detail: pytest.fail("asked a reviewer"))
    assert operator(metric_files, required="False").execute({})["required"] is False


def test_an_answer_or_a_timeout_ends_the_wait(metric_files):
    from airflow.providers.standard.exceptions import HITLTimeoutError

    task = operator(metric_files)
    when = datetime(2026, 11, 27, tzinfo=UTC)
    event = {"chosen_options": ["Approve"], "params_input": {}, "responded_at": when, "responded_by_user": None}
    assert task.execute_complete({}, event)["chosen_options"] == ["Approve"]
    with pytest.raises(HITLTimeoutError):
        task.execute_complete({}, {"error": "The timeout has passed", "error_type": "timeout"})


def test_older_airflow_refuses_the_param_with_the_version_it_needs(monkeypatch, metric_files):
    import airflow
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setattr(airflow, "__version__", "3.0.6")
    old = importlib.reload(approval)
    try:
        assert old.HAS_HITL is False
        assert old.ModelApprovalOperator(task_id="a", required="False").execute({})["required"] is False
        with pytest.raises(AirflowFailException, match=r"needs Airflow 3\.1\.0 or newer .* this is Airflow 3\.0\.6"):
            old.ModelApprovalOperator(task_id="b", required="True").execute({})
    finally:
        monkeypatch.undo()
        importlib.reload(approval)


def test_kfp_export_refuses_the_approval_by_name_or_leaves_it_out():
    import runpy

    from claimed_airflow.kfp.plan import ExportError, plan_dag
    from tests.conftest import ROOT

    dag = runpy.run_path(str(ROOT / "dags" / "dicom_to_deployment.py"))["dag"]
    with pytest.raises(ExportError, match=r"task 'approval': is a reviewer's approval .* --skip approval"):
        plan_dag(dag)
    steps = [step.task_id for step in plan_dag(dag, skip=["approval"]).steps]
    assert "approval" not in steps and "deploy" in steps
