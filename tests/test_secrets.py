# ruff: noqa: F811  (fixtures imported from other test modules)
"""A real Airflow run deploys to Watson ML (stub) and e-mails the outcome; the API key appears nowhere."""

from __future__ import annotations

import email
import email.policy
import json
import os
from pathlib import Path

import pytest

from tests.test_watson_ml import connection, model  # noqa: F401 (fixtures)
from tests.wml_stub import API_KEY, WatsonMLStub

pytest.importorskip("ibm_watsonx_ai")


def stored_values(run_id: str) -> str:
    """XComs and rendered template fields of a DAG run, as stored in the metadata database."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        xcoms = session.scalars(select(XComModel).where(XComModel.run_id == run_id)).all()
        rendered = session.scalars(
            select(RenderedTaskInstanceFields).where(RenderedTaskInstanceFields.run_id == run_id)
        ).all()
        assert xcoms and rendered
        return json.dumps(
            [[x.key, x.value] for x in xcoms] + [[r.task_id, r.rendered_fields] for r in rendered], default=str
        )


def logs_and_outputs(home: Path, output_root: Path) -> str:
    files = [p for folder in (home / "logs", output_root) if folder.exists() for p in folder.rglob("*") if p.is_file()]
    return "\n".join(p.read_text(errors="replace") for p in files)


@pytest.mark.e2e
def test_api_key_is_in_no_log_xcom_rendered_field_or_manifest(
    tmp_path,
    run_dag,
    airflow_home,
    output_root,
    model,
    smtp,
    isolated_env,
    capfd,
    caplog,
):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"accuracy": 0.9}))
    with WatsonMLStub(tmp_path) as stub:
        connection(stub)
        state, tasks, run_id = run_dag(
            "claimed_test_deploy", {"model": str(model), "metrics": str(metrics), "wml_conn": "wml_stub"}
        )
    assert (state, tasks) == ("success", {"watson_ml": "success", "notify": "success"})
    assert stub.requests[1]["body"]["api_key"] == API_KEY  # the key was really used by the task
    message = email.message_from_bytes(smtp.messages[0].content, policy=email.policy.default)
    assert next(iter(stub.deployments)) in message.get_body(("html",)).get_content()
    seen = stored_values(run_id)
    assert "deployment_url" in seen
    printed = capfd.readouterr()
    logs = logs_and_outputs(airflow_home, output_root) + printed.out + printed.err + caplog.text
    assert "is ready: https://127.0.0.1" in logs  # the task's own log lines were captured and scanned
    everything = [seen, logs]
    assert all(API_KEY not in text for text in everything)
    assert os.environ["AIRFLOW_CONN_WML_STUB"].count(API_KEY) == 1


@pytest.mark.e2e
def test_refused_key_fails_the_task_with_a_clear_error_and_no_key(
    tmp_path,
    run_dag,
    model,
    smtp,
    isolated_env,
    capfd,
    caplog,
):
    with WatsonMLStub(tmp_path, refuse=True) as stub:
        connection(stub)
        state, tasks, run_id = run_dag("claimed_test_deploy", {"model": str(model), "metrics": "unused"})
    assert (state, tasks["watson_ml"], tasks["notify"]) == ("failed", "failed", "upstream_failed")
    printed = capfd.readouterr()
    text = printed.out + printed.err + caplog.text
    assert "deploy.watson_ml: conn_id: Watson ML refused the credentials" in text
    assert API_KEY not in text + stored_values_or_empty(run_id)


def stored_values_or_empty(run_id: str) -> str:
    try:
        return stored_values(run_id)
    except AssertionError:
        return ""
