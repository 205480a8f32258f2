"""Real Airflow: ``airflow db migrate`` in a temporary AIRFLOW_HOME, then ``dag.test()`` of real DAGs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from claimed_airflow.core.storage import safe_name


def _task_dir(output_root: Path, dag_id: str, run_id: str, task_id: str) -> Path:
    return output_root / dag_id / safe_name(run_id) / task_id


def test_blessed_gate_runs_downstream(run_dag, small_predictions, output_root):
    state, tasks, run_id = run_dag(
        "claimed_test_gate", {"table": str(small_predictions), "condition": "accuracy > 0.5"}
    )
    assert state == "success"
    assert tasks == {"filter": "success", "metrics": "success", "blessing": "success", "after_gate": "success"}
    after = _task_dir(output_root, "claimed_test_gate", run_id, "after_gate")
    assert pd.read_parquet(after / "table.parquet")["label"].tolist() == ["a"]  # XCom URI passed downstream
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        link = session.scalar(
            XComModel.get_many(run_id=run_id, key="_link_ArtifactsLink", task_ids="after_gate").with_only_columns(
                XComModel.value
            )
        )
    assert str(link).strip('"') == f"file://{after}"


def test_unblessed_gate_skips_downstream_not_fails(run_dag, small_predictions, output_root):
    state, tasks, run_id = run_dag(
        "claimed_test_gate", {"table": str(small_predictions), "condition": "accuracy > 0.9"}
    )
    assert state == "success"
    assert tasks["blessing"] == "success" and tasks["after_gate"] == "skipped" and tasks["filter"] == "success"
    manifest = json.loads(
        (_task_dir(output_root, "claimed_test_gate", run_id, "blessing") / "manifest.json").read_text()
    )
    assert manifest["values"] == {"blessed": False}


def _task_log(capfd, caplog) -> str:
    """What the task logged: Airflow's structured log (stdout) and stdlib logging seen by pytest."""
    return capfd.readouterr().out + caplog.text


def test_bad_dicom_is_reported_and_the_batch_goes_on(run_dag, dicom_folder, output_root, capfd, caplog):
    state, tasks, run_id = run_dag("claimed_test_dicom_input", {"source": str(dicom_folder)})
    assert state == "success", tasks
    task_dir = _task_dir(output_root, "claimed_test_dicom_input", run_id, "dicom_input")
    manifest = json.loads((task_dir / "manifest.json").read_text())
    # MR_small_RLE.dcm is the same SOP instance as MR_small.dcm: a duplicate, set aside
    assert {r["item"] for r in manifest["rejected"]} == {"truncated.dcm", "notes.txt", "MR_small_RLE.dcm"}
    assert len(pd.read_parquet(task_dir / "metadata.parquet")) == 4
    assert "set aside truncated.dcm: not a readable DICOM file" in _task_log(capfd, caplog)


def test_missing_input_fails_the_task_with_a_clear_error(run_dag, tmp_path, capfd, caplog):
    state, tasks, _ = run_dag("claimed_test_dicom_input", {"source": str(tmp_path / "nowhere")})
    assert state == "failed" and tasks["dicom_input"] == "failed"
    assert f"input.dicom: source: input path does not exist: {tmp_path / 'nowhere'}" in _task_log(capfd, caplog)


@pytest.mark.e2e
def test_dicom_privacy_pipeline_with_salt_connection(run_dag, dicom_folder, output_root, capfd, caplog, monkeypatch):
    pytest.importorskip("highdicom")
    salt = "airflow-connection-salt-0x5eed"
    monkeypatch.setenv("AIRFLOW_CONN_CLAIMED_TEST_SALT", json.dumps({"conn_type": "generic", "password": salt}))
    state, tasks, run_id = run_dag("claimed_test_dicom_privacy", {"source": str(dicom_folder)})
    assert state == "success", tasks
    deid = _task_dir(output_root, "claimed_test_dicom_privacy", run_id, "deidentify")
    report = json.loads((deid / "deidentification.json").read_text())
    # MR_small_RLE.dcm is the same SOP instance as MR_small.dcm: kept by input.dicom, set aside here;
    # JPGExtended.dcm, a Secondary Capture without a BurnedInAnnotation flag, may show text: set aside too
    assert report["salt_source"] == "Airflow connection claimed_test_salt" and len(report["files"]) == 3
    reasons = [r["reason"] for r in json.loads((deid / "manifest.json").read_text())["rejected"]]
    assert sorted(r.split(":")[0] for r in reasons) == [
        "duplicate SOPInstanceUID",
        "no BurnedInAnnotation flag on a Secondary Capture Image Storage image",
    ]
    images = _task_dir(output_root, "claimed_test_dicom_privacy", run_id, "dicom_to_images")
    assert len(pd.read_csv(images / "images" / "index.csv")) == 3
    sr = _task_dir(output_root, "claimed_test_dicom_privacy", run_id, "dicom_output")
    assert len(list((sr / "dicom").glob("*.dcm"))) == 3
    everything = _task_log(capfd, caplog) + "".join(p.read_text() for p in deid.glob("*.json"))
    assert salt not in everything
