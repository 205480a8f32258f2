"""monitoring.notification_email through an Airflow SMTP connection to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import json

import pytest

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run
from tests.smtp_server import free_port


@pytest.fixture
def metrics(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"accuracy": 0.8125, "count": 16, "per_class": {"COVID-19": {"recall": 0.75}}}))
    return str(path)


def test_sends_metrics_and_blessing_outcome(tmp_path, smtp, metrics):
    result = run(
        "monitoring.notification_email",
        {
            "metrics": metrics,
            "to": "ops@example.com, lead@example.com",
            "conn_id": "smtp_test",
            "condition": "accuracy >= 0.8",
            "model_uri": "/models/xray/3",
            "title": "dicom_to_deployment manual__1",
        },
        root=str(tmp_path),
    )
    assert result["recipients"] == 2 and result["outcome"] == "blessed"
    (envelope,) = smtp.messages
    assert envelope.mail_from == "airflow@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "lead@example.com"]
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["Subject"] == "[claimed] dicom_to_deployment manual__1: model blessed (accuracy 0.812)"
    body = message.get_body(("html",)).get_content()
    assert "<td>accuracy</td><td>0.8125</td>" in body and "<td>per_class_COVID-19_recall</td>" in body
    assert "<code>accuracy &gt;= 0.8</code>" in body and "/models/xray/3" in body


def test_explicit_outcome_wins_and_is_reported_when_false(tmp_path, smtp, metrics):
    arguments = {"metrics": metrics, "to": ["ops@example.com"], "conn_id": "smtp_test", "blessed": "false"}
    assert run("monitoring.notification_email", arguments, root=str(tmp_path))["outcome"] == "not_blessed"
    message = email.message_from_bytes(smtp.messages[0].content, policy=email.policy.default)
    assert "model NOT blessed" in message["Subject"]


def test_errors_are_one_line(tmp_path, metrics, monkeypatch):
    with pytest.raises(ClaimedError, match=r"^to: expected e-mail addresses, got \['ops'\]"):
        run("monitoring.notification_email", {"metrics": metrics, "to": "ops"}, root=str(tmp_path))
    conn = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": free_port(),
        "extra": {"disable_ssl": True, "retry_limit": 0},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DOWN", json.dumps(conn))
    with pytest.raises(ClaimedError, match="^conn_id: cannot send e-mail through SMTP connection 'smtp_down'"):
        run(
            "monitoring.notification_email",
            {"metrics": metrics, "to": "a@example.com", "conn_id": "smtp_down"},
            root=str(tmp_path),
        )


def test_no_recipients_sends_nothing_and_fairness_counts(tmp_path, metrics):
    fairness = tmp_path / "fairness.json"
    fairness.write_text(json.dumps({"biased": 2, "attributes": {"PatientSex": {"biased": 2}}}))
    arguments = {"metrics": metrics, "fairness": str(fairness), "condition": "accuracy > 0.8 and fairness_biased == 0"}
    result = run("monitoring.notification_email", {**arguments, "to": "[]"}, root=str(tmp_path))
    assert result["recipients"] == 0 and result["outcome"] == "not_blessed"  # no SMTP connection needed


def test_a_verdict_replaces_the_blessing_outcome(tmp_path, smtp, metrics):
    arguments = {"metrics": metrics, "to": ["ops@example.com"], "conn_id": "smtp_test", "title": "monitoring <x>"}
    run("monitoring.notification_email", {**arguments, "verdict": "2 monitoring\r\nfinding(s)"}, root=str(tmp_path))
    message = email.message_from_bytes(smtp.messages[0].content, policy=email.policy.default)
    assert message["Subject"] == "[claimed] monitoring <x>: 2 monitoring finding(s) (accuracy 0.812)"
    body = message.get_body(("html",)).get_content()
    assert "blessed" not in body and "<h2>monitoring &lt;x&gt;: 2 monitoring" in body
