"""The exported pipeline runs on one machine with ``kfp.local`` and gives what the Airflow run gives.

The YAML written by ``claimed-airflow export-kfp`` is loaded with kfp's loader and run with
``kfp.local.SubprocessRunner`` (each step a subprocess running kfp's executor and our runner); the
same DAG runs in real Airflow (``dag.test()``). Outputs are compared file by file through the run
manifests (content hashes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("kfp.dsl")

from kfp import components, local  # noqa: E402

from claimed_airflow.cli import main as cli  # noqa: E402
from claimed_airflow.core.storage import safe_name  # noqa: E402
from tests.flagship import DETERMINISTIC_TASKS, deterministic_hashes  # noqa: E402
from tests.kfp_export.flagship import FLAGSHIP  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GATE_DAGS = ROOT / "tests" / "dags" / "claimed_test_dags.py"
SERVING_TARGETS = {"kserve", "watson_ml"}  # the flagship's deploy targets other than the default (local)
# Exports download nothing when a step starts (kfp's runtime is in the component images, and here in
# this environment): test_nothing_is_downloaded_when_a_step_starts checks the YAML.


def _export(tmp_path: Path, dag_file: Path, dag_id: str, *options: str) -> Path:
    path = tmp_path / f"{dag_id}.yaml"
    assert cli(["export-kfp", str(dag_file), "--dag-id", dag_id, "-o", str(path), *options]) == 0
    return path


def _run_kfp(tmp_path: Path, pipeline_yaml: Path, dag_id: str, **arguments) -> Path:
    """Run the exported YAML with kfp.local; return the new run folder <output_root>/<dag_id>/<KFP run id>."""
    output_root = tmp_path / "kfp-out"
    earlier = set((output_root / dag_id).iterdir()) if (output_root / dag_id).exists() else set()
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp-root"))
    pipeline = components.load_component_from_file(str(pipeline_yaml))
    pipeline(output_root=str(output_root), **arguments)  # raises if a step fails
    (run_dir,) = set((output_root / dag_id).iterdir()) - earlier
    return run_dir


def _files(run_dir: Path) -> dict[str, set[str]]:
    return {
        task.name: {p.relative_to(task).as_posix() for p in task.rglob("*") if p.is_file()}
        for task in run_dir.iterdir()
    }


def _manifests(run_dir: Path) -> dict[str, dict]:
    return {m.parent.name: json.loads(m.read_text()) for m in run_dir.glob("*/manifest.json")}


def _hashes(record: dict, kind: str) -> dict:
    return {name: item["hash"] for name, item in record[kind].items()}


def test_gate_dag_on_kfp_local_matches_airflow(tmp_path, small_predictions, run_dag, output_root):
    pipeline = _export(tmp_path, GATE_DAGS, "claimed_test_gate")
    conf = {"table": str(small_predictions), "condition": "accuracy > 0.5"}
    state, tasks, run_id = run_dag("claimed_test_gate", conf)
    assert state == "success" and set(tasks.values()) == {"success"}
    airflow_dir = output_root / "claimed_test_gate" / safe_name(run_id)
    kfp_dir = _run_kfp(tmp_path, pipeline, "claimed_test_gate", **conf)
    assert _files(kfp_dir) == _files(airflow_dir)
    assert set(_files(kfp_dir)) == {"filter", "metrics", "blessing", "after_gate"}  # blessed: after_gate ran
    kfp_manifests, airflow_manifests = _manifests(kfp_dir), _manifests(airflow_dir)
    for task, record in airflow_manifests.items():  # every step here is deterministic
        other = kfp_manifests[task]
        assert other["parameters"] == record["parameters"], task
        assert other["values"] == record["values"], task
        assert _hashes(other, "outputs") == _hashes(record, "outputs"), task
        assert _hashes(other, "inputs") == _hashes(record, "inputs"), task
        assert other["scope"]["task_id"] == task and other["scope"]["dag_id"] == "claimed_test_gate"
    assert kfp_manifests["after_gate"]["inputs"]["table"]["uri"] == str(kfp_dir / "filter" / "table.parquet")


def test_unblessed_gate_skips_the_steps_after_it_on_kfp_local(tmp_path, small_predictions):
    pipeline = _export(tmp_path, GATE_DAGS, "claimed_test_gate")
    kfp_dir = _run_kfp(
        tmp_path, pipeline, "claimed_test_gate", table=str(small_predictions), condition="accuracy > 0.9"
    )
    assert set(_files(kfp_dir)) == {"filter", "metrics", "blessing"}
    assert _manifests(kfp_dir)["blessing"]["values"] == {"blessed": False}


@pytest.mark.e2e
def test_flagship_on_kfp_local_matches_airflow(tmp_path, run_dag, output_root, small_cohort):
    """dicom_to_deployment: exported, run on kfp.local and in Airflow with the same small params and data."""
    pipeline = _export(tmp_path, FLAGSHIP, "dicom_to_deployment")
    conf = {"epochs": 1, "image_size": 32, "min_accuracy": 0.0, "min_over_majority": -1.0, **small_cohort}
    state, tasks, run_id = run_dag("dicom_to_deployment", conf)
    assert state == "success", tasks
    # deploy_target local: the serving gates are false, so only the other targets' tasks are skipped
    assert {task for task, task_state in tasks.items() if task_state != "success"} == SERVING_TARGETS, tasks
    assert {tasks[task] for task in SERVING_TARGETS} == {"skipped"}, tasks
    airflow_dir = output_root / "dicom_to_deployment" / safe_name(run_id)
    kfp_dir = _run_kfp(tmp_path, pipeline, "dicom_to_deployment", **conf)

    # Same tasks, same files in every task folder (deploy ran: min_accuracy 0 blesses any model); the skipped
    # targets wrote nothing on either side (on KFP their dsl.If was false). The approval is an Airflow operator
    # (no folder); on KFP it is a claimed step that passed (require_approval is false).
    assert _files(kfp_dir) == {**_files(airflow_dir), "approval": {"manifest.json"}}
    assert _manifests(kfp_dir)["approval"]["values"] == {"reviewed": False}
    assert set(_files(kfp_dir)) == {
        "approval",
        "dicom_input",
        "cohort",
        "dicom_to_images_shard_0",  # shards=1: one task instance of the mapped task, then the merge
        "dicom_to_images",
        "train",
        "predict",
        "confusion_matrix",
        "fairness",
        "lime",
        "robustness",
        "blessing",
        "notify",
        "reference_profile",
        "deploy",
        "dicom_results",
        "to_kserve",
        "to_watson_ml",
    }
    kfp_manifests, airflow_manifests = _manifests(kfp_dir), _manifests(airflow_dir)
    assert kfp_manifests["to_kserve"]["values"] == kfp_manifests["to_watson_ml"]["values"] == {"blessed": False}
    for task, record in airflow_manifests.items():
        assert kfp_manifests[task]["component"] == record["component"]
        parameters = {k: v for k, v in record["parameters"].items() if k != "parts"}  # the merge's: URIs
        assert {k: v for k, v in kfp_manifests[task]["parameters"].items() if k != "parts"} == parameters, task
    assert (
        kfp_manifests["train"]["parameters"]["epochs"] == 1 and kfp_manifests["train"]["parameters"]["image_size"] == 32
    )
    # Deterministic steps: the same content (hashes of inputs and outputs) and the same values.
    assert deterministic_hashes(lambda task: kfp_dir / task / "manifest.json") == deterministic_hashes(
        lambda task: airflow_dir / task / "manifest.json"
    )
    for task in DETERMINISTIC_TASKS:
        assert _hashes(kfp_manifests[task], "inputs") == _hashes(airflow_manifests[task], "inputs"), task
        assert kfp_manifests[task]["values"] == airflow_manifests[task]["values"], task
    kfp_meta = pd.read_parquet(kfp_dir / "dicom_input" / "metadata.parquet")
    assert kfp_meta.equals(pd.read_parquet(airflow_dir / "dicom_input" / "metadata.parquet"))
    # The model went through the gate into the versioned model folder of each output root.
    model = Path(kfp_manifests["deploy"]["values"]["model_uri"])
    assert model.is_relative_to(tmp_path / "kfp-out")
    assert (model / "model.keras").exists() and (model / "labels.json").exists()


def test_a_failing_step_fails_the_kfp_run_with_the_components_message(tmp_path, capfd):
    pipeline = _export(tmp_path, GATE_DAGS, "claimed_test_dicom_input")
    missing = tmp_path / "nowhere"
    with pytest.raises(RuntimeError, match="dicom-input"):
        _run_kfp(tmp_path, pipeline, "claimed_test_dicom_input", source=str(missing))
    assert f"input.dicom: source: input path does not exist: {missing}" in capfd.readouterr().out


APPROVAL_DAG = """
from datetime import datetime
from airflow.sdk import DAG, Param
from claimed_airflow.operators import ConfusionMatrixMetricOperator, RowsFilterOperator
from claimed_airflow.operators.approval import ModelApprovalOperator
with DAG("kfp_approval", schedule=None, start_date=datetime(2026, 1, 1),
         params={"table": Param("t.csv", type="string"), "require_approval": Param(True, type="boolean")}):
    metrics = ConfusionMatrixMetricOperator(task_id="metrics", predictions="{{ params.table }}")
    approval = ModelApprovalOperator(task_id="approval", required="{{ params.require_approval }}",
                                     metrics=metrics.output["metrics"])
    approval >> RowsFilterOperator(task_id="after", table="{{ params.table }}", condition="label == prediction")
"""


def test_a_required_approval_stops_the_kfp_run_saying_kubeflow_has_no_reviewer(tmp_path, small_predictions, capfd):
    dag_file = tmp_path / "kfp_approval.py"
    dag_file.write_text(APPROVAL_DAG)
    pipeline = _export(tmp_path, dag_file, "kfp_approval")
    passed = _run_kfp(tmp_path, pipeline, "kfp_approval", table=str(small_predictions), require_approval=False)
    assert set(_files(passed)) == {"metrics", "approval", "after"}
    capfd.readouterr()
    with pytest.raises(RuntimeError, match="approval"):
        _run_kfp(tmp_path, pipeline, "kfp_approval", table=str(small_predictions))  # the DAG's default: True
    out = capfd.readouterr().out
    assert "kubeflow_approval: required: a reviewer must approve this model, but Kubeflow Pipelines has no" in out
    (stopped,) = set((tmp_path / "kfp-out" / "kfp_approval").iterdir()) - {passed}
    assert set(_files(stopped)) == {"metrics"}  # nothing after the approval ran


def test_nothing_is_downloaded_when_a_step_starts(tmp_path):
    """Steps run kfp's executor from the component image (docker/ installs the exporter's kfp, no deps)."""
    import re

    import kfp
    import yaml

    default = _export(tmp_path, FLAGSHIP, "dicom_to_deployment")
    spec = next(yaml.safe_load_all(default.read_text()))
    commands = [" ".join(e["container"]["command"][:2]) for e in spec["deploymentSpec"]["executors"].values()]
    assert commands and not any("pip" in command for command in commands)
    assert "pip install" not in default.read_text()
    opted_in = tmp_path / "install.yaml"
    flagship = str(ROOT / "dags" / "dicom_to_deployment.py")
    assert cli(["export-kfp", flagship, "--dag-id", "dicom_to_deployment", "-o", str(opted_in), "--install-kfp"]) == 0
    assert "pip install" in opted_in.read_text()  # the check above can fail
    for dockerfile in ("Dockerfile", "Dockerfile.gpu"):
        text = (ROOT / "docker" / dockerfile).read_text()
        assert re.search(rf"^ARG KFP=kfp=={re.escape(kfp.__version__)}$", text, re.M), dockerfile
        assert 'pip install --no-deps "${KFP}"' in text, dockerfile


CACHE_DAG = """
from datetime import datetime
from airflow.sdk import DAG, Param
from claimed_airflow.operators import ConfusionMatrixMetricOperator, RowsFilterOperator
with DAG("kfp_cache", schedule=None, start_date=datetime(2026, 1, 1),
         params={"table": Param("t.csv", type="string"), "cache": Param(True, type="boolean")}):
    rows = RowsFilterOperator(task_id="filter", table="{{ params.table }}", condition="label == label",
                          cache="{{ params.cache }}")
    ConfusionMatrixMetricOperator(task_id="metrics", predictions=rows.output["output"], cache=True)
"""


def test_cached_tasks_reuse_outputs_on_a_second_kfp_run(tmp_path, small_predictions):
    """cache=True: the step looks up our content-hash cache under the output root; KFP's own caching is off."""
    import yaml

    dag_file = tmp_path / "kfp_cache.py"
    dag_file.write_text(CACHE_DAG)
    pipeline = _export(tmp_path, dag_file, "kfp_cache")
    tasks = next(yaml.safe_load_all(pipeline.read_text()))["root"]["dag"]["tasks"]
    assert all(task["cachingOptions"] == {} for task in tasks.values())  # enableCache false
    assert tasks["metrics"]["inputs"]["parameters"]["claimed_cache"] == {"runtimeValue": {"constant": True}}
    assert tasks["filter"]["inputs"]["parameters"]["claimed_cache"] == {"componentInputParameter": "cache"}

    first = _run_kfp(tmp_path, pipeline, "kfp_cache", table=str(small_predictions))
    second = _run_kfp(tmp_path, pipeline, "kfp_cache", table=str(small_predictions))
    before, after = _manifests(first), _manifests(second)
    for task in ("filter", "metrics"):
        assert before[task]["cache"]["hit"] is False and after[task]["cache"]["hit"] is True, task
        assert after[task]["cache"]["from"] == str(first / task / "manifest.json"), task
        assert after[task]["outputs"] == before[task]["outputs"], task  # the first run's files, reused
        assert after[task]["values"] == before[task]["values"], task
    third = _run_kfp(tmp_path, pipeline, "kfp_cache", table=str(small_predictions), cache=False)
    assert _manifests(third)["filter"]["cache"]["hit"] is False  # the parameter turns it off
