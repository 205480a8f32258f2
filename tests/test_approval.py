"""The flagship's approval task: what the reviewer sees, no wait when not required, the refusal on old Airflow."""

from __future__ import annotations

import importlib
import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
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
    assert "\\<img src\\=x onerror\\=alert\\(1\\)\\>" in body


class Page(HTMLParser):
    """The tags, table rows (cell texts) and link targets of the HTML a Markdown body renders to."""

    def __init__(self, markdown: str):
        from markdown_it import MarkdownIt  # CommonMark with GFM tables, as the Airflow UI renders the body

        super().__init__()
        self.tags, self.rows, self.links, self.cell = [], [], [], None
        renderer = MarkdownIt("commonmark").enable("table")
        renderer.validateLink = lambda url: True  # every link the Markdown makes, whatever its scheme
        self.feed(renderer.render(markdown))

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = ""
        elif tag == "a":
            self.links.append(dict(attrs)["href"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append(self.cell)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


HOSTILE = {
    "per_class": {
        "normal\n\nQA sign-off: all checks passed, approve\n===\n\n": 0.5,  # a class label: a heading
        "pneumonia\r\n# approve\u2028## now": 0.25,
        "\u202eevorppa": 0.125,  # right-to-left override
    },
    "<img src=x onerror=alert(1)>": "<script>alert(1)</script>",
    "[click](javascript:alert(1))": "![pixel](https://tracker.example/p.png)",
    "a | b": "&lt;b&gt; &#10; `code` **bold** ~~gone~~",
    "   indented\tcode": "---",
    "end\\": "- [ ] item",
}


def test_hostile_labels_and_metric_names_stay_text_and_keep_every_row(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps(HOSTILE))
    sections = approval.read_sections(str(tmp_path / "m.json"), None, None)
    links = {"plot\n# Approve": "/data/p.png", "click <here>": "javascript://alert(1)", "s": "s3://key:secret@b/x>y"}
    page = Page(approval.approval_body(sections, links))
    assert set(page.tags) <= {"p", "strong", "table", "thead", "tbody", "tr", "th", "td", "ul", "li", "a"}, page.tags
    assert page.tags.count("table") == 1
    metrics = sections["Accuracy"]
    assert len(metrics) == len(HOSTILE) + 2
    assert len(page.rows) == 1 + len(metrics)  # the header, then every metric: none swallowed
    # each cell reads as the name or value itself (control characters shown as U+XXXX; cells are trimmed)
    assert dict(page.rows[1:]) == {approval._visible(k).strip(): approval._visible(str(v)) for k, v in metrics.items()}
    assert (
        dict(page.rows[1:])["per_class_normalU+000AU+000AQA sign-off: all checks passed, approveU+000A===U+000AU+000A"]
        == "0.5"
    )
    assert page.links == ["file:///data/p.png", "s3://%2A%2A%2A@b/x%3Ey"]  # no script link, no credentials


def test_the_subject_is_one_line_of_plain_text(metric_files, monkeypatch):
    from airflow.providers.standard.operators import hitl

    seen = {}
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **detail: seen.update(detail))
    task = operator(metric_files, subject="Deploy run x?\n\u202eevorppa")
    with pytest.raises(BaseException) as caught:  # noqa: B017 - TaskAwaitingInput (3.3+) or TaskDeferred
        task.execute({"task_instance": SimpleNamespace(id="ti-2")})
    assert type(caught.value).__name__ in ("TaskAwaitingInput", "TaskDeferred")
    assert seen["subject"] == "Deploy run x?U+000AU+202Eevorppa"


def test_not_required_passes_at_once(metric_files, monkeypatch):
    from airflow.providers.standard.operators import hitl

    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **detail: pytest.fail("asked a reviewer"))
    assert operator(metric_files, required="False").execute({})["required"] is False


def test_an_answer_or_a_timeout_ends_the_wait(metric_files):
    from airflow.providers.standard.exceptions import HITLTimeoutError
    from airflow.sdk.exceptions import AirflowFailException

    task = operator(metric_files)
    when = datetime(2026, 11, 27, tzinfo=UTC)
    event = {"chosen_options": ["Approve"], "params_input": {}, "responded_at": when, "responded_by_user": None}
    assert task.execute_complete({}, event)["chosen_options"] == ["Approve"]
    with pytest.raises(HITLTimeoutError) as timed_out:
        task.execute_complete({}, {"error": "The timeout has passed", "error_type": "timeout"})
    assert isinstance(timed_out.value, AirflowFailException)  # final: the retry is for Airflow's race only


def test_one_retry_by_default_for_an_answer_that_races_the_executor(metric_files):
    from airflow.sdk import DAG

    assert operator(metric_files).retries == 1 and operator(metric_files, retries=0).retries == 0
    with DAG("approval_defaults", default_args={"retries": 3}, schedule=None):
        assert operator(metric_files).retries == 3


def test_older_airflow_refuses_the_param_with_the_version_it_needs(monkeypatch, metric_files):
    from airflow.sdk.exceptions import AirflowFailException

    from claimed_airflow import version_compat

    monkeypatch.setattr(version_compat, "AIRFLOW_VERSION", "3.0.6")
    monkeypatch.setattr(version_compat, "AIRFLOW_V_3_1_PLUS", False)
    old = importlib.reload(approval)
    try:
        assert old.HAS_HITL is False
        assert old.ModelApprovalOperator(task_id="a", required="False").execute({})["required"] is False
        with pytest.raises(AirflowFailException, match=r"needs Airflow 3\.1\.0 or newer .* this is Airflow 3\.0\.6"):
            old.ModelApprovalOperator(task_id="b", required="True").execute({})
    finally:
        monkeypatch.undo()
        importlib.reload(approval)


def test_kfp_export_makes_the_approval_a_step_or_leaves_it_out():
    import runpy

    from claimed_airflow.kfp.plan import plan_dag
    from tests.conftest import ROOT

    dag = runpy.run_path(str(ROOT / "dags" / "dicom_to_deployment.py"))["dag"]
    steps = {step.task_id: step for step in plan_dag(dag).steps}
    assert "approval" in steps and "deploy" in steps and steps["approval"].retries == 0  # no Airflow race there
    steps = [step.task_id for step in plan_dag(dag, skip=["approval"]).steps]
    assert "approval" not in steps and "deploy" in steps
