"""Results visible in the Kubeflow UI: typed KFP outputs (Metrics, ClassificationMetrics, HTML, Markdown, Model)
beside the URIs, declared in the compiled IR and written with their values by a ``kfp.local`` run."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from claimed_airflow.core import OutputPath, UiOutputs, component, registry
from claimed_airflow.kfp import ui
from tests.kfp_export.flagship import FLAGSHIP

ROOT = Path(__file__).resolve().parents[2]
GERMAN = ROOT.parent / "shared" / "data" / "german" / "german.data"  # as tests/test_trusted_ai.py


def test_report_escapes_what_comes_from_data():
    page = ui.report_html(registry.get("filter.rows"), {}, {"<script>alert(1)</script>": "<img src=x onerror=y>"})
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_typed_outputs_follow_from_the_spec():
    assert ui.ui_outputs(registry.get("metric.confusion_matrix")) == ["ui_metrics", "ui_confusion_matrix", "ui_report"]
    assert ui.ui_outputs(registry.get("metric.fairness")) == ["ui_metrics", "ui_report"]
    assert ui.ui_outputs(registry.get("metric.lime")) == ["ui_metrics", "ui_report"]
    assert ui.ui_outputs(registry.get("train.fairness_mitigation")) == ["ui_metrics", "ui_report", "ui_summary"]
    assert ui.ui_outputs(registry.get("train.mobilenet_v2")) == ["ui_metrics", "ui_model"]
    assert ui.ui_outputs(registry.get("deploy.local")) == ["ui_metrics", "ui_model"]
    assert ui.ui_outputs(registry.get("filter.rows")) == ["ui_metrics"]
    assert ui.ui_outputs(registry.get("monitoring.model_report")) == ["ui_metrics", "ui_report"]


def test_a_component_of_ours_declares_what_the_ui_shows():
    """What the UI shows comes from the component's own declaration (no list of library names)."""

    @component("metric", name="own_matrix", ui=UiOutputs(confusion_matrix="matrix", image_folder="pictures"))
    def own_matrix(matrix: OutputPath = "matrix.json", pictures: OutputPath = "pictures") -> dict:
        """Own."""
        return {}

    assert ui.ui_outputs(own_matrix.spec) == ["ui_metrics", "ui_confusion_matrix", "ui_report"]
    with pytest.raises(TypeError, match="ui names 'plots', which is not one of its outputs"):

        @component("metric", name="bad_ui", ui=UiOutputs(image_folder="plots"))
        def bad_ui(pictures: OutputPath = "pictures") -> dict:
            """Bad."""
            return {}


kfp_dsl = pytest.importorskip("kfp.dsl")


def _artifacts(pipeline_yaml: Path) -> dict[str, dict[str, str]]:
    """task name -> {typed output: artifact type} in the compiled IR (through sub-pipelines)."""
    import yaml

    spec = next(yaml.safe_load_all(pipeline_yaml.read_text()))
    found = {}
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    for dag in dags:
        for name, task in dag["tasks"].items():
            component = spec["components"][task["componentRef"]["name"]]
            if "executorLabel" in component:
                artifacts = component.get("outputDefinitions", {}).get("artifacts", {})
                found[name] = {k: v["artifactType"]["schemaTitle"] for k, v in artifacts.items()}
    return found


def test_compiled_ir_declares_the_typed_outputs(tmp_path):
    from claimed_airflow.cli import main as cli

    flagship, mitigation = tmp_path / "flagship.yaml", tmp_path / "mitigation.yaml"
    options = ["--dag-id", "dicom_to_deployment", "-o", str(flagship)]
    assert cli(["export-kfp", str(FLAGSHIP), *options]) == 0
    assert cli(["export-kfp", "--component", "train.fairness_mitigation", "-o", str(mitigation)]) == 0
    tasks = _artifacts(flagship)
    assert tasks["confusion-matrix"] == {
        "ui_metrics": "system.Metrics",
        "ui_confusion_matrix": "system.ClassificationMetrics",
        "ui_report": "system.HTML",
    }
    assert tasks["fairness"]["ui_report"] == "system.HTML" and tasks["lime"]["ui_report"] == "system.HTML"
    assert tasks["robustness"]["ui_metrics"] == "system.Metrics"
    assert tasks["train"]["ui_model"] == "system.Model" and tasks["deploy"]["ui_model"] == "system.Model"
    assert list(_artifacts(mitigation).values()) == [
        {"ui_metrics": "system.Metrics", "ui_report": "system.HTML", "ui_summary": "system.Markdown"}
    ]


@pytest.fixture
def kfp_local(tmp_path):
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp-root"))
    return tmp_path / "out"


def _component(name: str):
    from claimed_airflow.kfp.components import load_component

    return load_component(registry.get(name))


def test_confusion_matrix_step_shows_metrics_matrix_and_report(kfp_local, small_predictions):
    task = _component("metric.confusion_matrix")(predictions=str(small_predictions), claimed_output_root=str(kfp_local))
    metrics = json.loads(Path(task.outputs["metrics"]).read_text())
    shown = task.outputs["ui_metrics"].metadata  # every number the step returned, e.g. accuracy 3 of 4
    assert shown["accuracy"] == 0.75 and shown == {k: float(v) for k, v in task.outputs["values"].items()}
    matrix = task.outputs["ui_confusion_matrix"].metadata["confusionMatrix"]
    assert [c["displayName"] for c in matrix["annotationSpecs"]] == metrics["classes"] == ["a", "b"]
    assert [row["row"] for row in matrix["rows"]] == metrics["matrix"] == [[1, 1], [0, 2]]
    page = Path(task.outputs["ui_report"].path).read_text()
    assert "<th>accuracy</th><td>0.75</td>" in page and 'src="data:image/png;base64,' in page


def test_deploy_step_shows_the_model_with_uri_framework_and_version(kfp_local, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "labels.json").write_text(json.dumps({"classes": ["a", "b"], "framework": "torch"}))
    (model / "model.onnx").write_bytes(b"onnx")
    task = _component("deploy.local")(model=str(model), claimed_output_root=str(kfp_local))
    metadata = task.outputs["ui_model"].metadata
    values = task.outputs["values"]
    assert metadata["uri"] == values["model_uri"] and Path(metadata["uri"], "model.onnx").read_bytes() == b"onnx"
    assert metadata["framework"] == "torch" and metadata["version"] == "1" and values["model_version"] == 1
    assert json.loads(Path(task.outputs["ui_model"].path).read_text())["uri"] == metadata["uri"]


def test_fairness_mitigation_step_shows_the_before_after_table(kfp_local):
    if not GERMAN.exists():
        pytest.skip(f"shared test data not found at {GERMAN}")
    table = _component("input.german_credit")(source=str(GERMAN), claimed_output_root=str(kfp_local)).outputs["table"]
    task = _component("train.fairness_mitigation")(
        table=table,
        protected={"sex": ["male"], "age": "age > 25"},
        label_column="credit",
        mitigate_for="age",
        drop_columns=["personal_status"],
        methods=["reweighing"],
        claimed_output_root=str(kfp_local),
    )
    summary = Path(task.outputs["ui_summary"].path).read_text()
    # the component's Markdown table, with markup characters escaped (column names come from data)
    assert html.unescape(summary) == Path(task.outputs["summary"]).read_text() and summary.count("|") > 4
    assert "-&gt;" in summary and "| reweighing |" in summary
    values = task.outputs["values"]
    assert task.outputs["ui_metrics"].metadata == {k: v for k, v in values.items() if not isinstance(v, bool)}
    assert "reweighing_accuracy_after" in values
    assert "<img" in Path(task.outputs["ui_report"].path).read_text()
