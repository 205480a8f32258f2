"""Retraining on the union (issue 26): input.dicom's extra_sources, and the model_retraining DAG end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from claimed_airflow.core.errors import ClaimedError, ParameterError
from claimed_airflow.core.runner import run


@pytest.fixture(scope="module")
def two_cohorts(tmp_path_factory) -> dict[str, Path]:
    """The original set (8 phantoms, labels by file) and newly labelled studies (6, labels by SOPInstanceUID)."""
    from tests.synthetic_chestxray import write_cohort

    root = tmp_path_factory.mktemp("cohorts")
    write_cohort(root / "original", count=8, seed=7)
    new = write_cohort(root / "new", count=6, seed=8)
    uids = run("input.dicom", {"source": str(root / "new" / "dicom")}, root=str(root / "out"))["metadata"]
    by_file = pd.read_parquet(uids).set_index("file")["SOPInstanceUID"]
    labels = pd.DataFrame({"SOPInstanceUID": new["file"].map(by_file), "label": new["label"]})
    labels.to_csv(root / "new" / "by_uid.csv", index=False)
    return {"root": root, "original": root / "original", "new": root / "new"}


def test_extra_sources_are_read_into_one_table_and_folder(two_cohorts, tmp_path):
    original, new = two_cohorts["original"], two_cohorts["new"]
    shutil.copytree(new / "dicom", tmp_path / "new")
    shutil.copy(original / "dicom" / "phantom_07_0000.dcm", tmp_path / "new" / "again.dcm")  # already read
    extra = [{"source": str(tmp_path / "new"), "labels": str(new / "by_uid.csv")}]  # label_key SOPInstanceUID
    arguments = {"source": str(original / "dicom"), "labels": str(original / "labels.csv"), "extra_sources": extra}
    result = run("input.dicom", arguments, root=str(tmp_path / "out"))
    assert (result["sources"], result["files_per_source"], result["duplicates"]) == (2, [8, 6], 1)
    table = pd.read_parquet(result["metadata"])
    assert len(table) == 14 and table["label"].notna().all() and table["SOPInstanceUID"].is_unique
    extra_rows = table[table["source"] == 1]
    assert extra_rows["file"].str.startswith("_extra/1/phantom_08_").all() and len(extra_rows) == 6
    assert all((Path(result["files"]) / file).is_file() for file in table["file"])
    assert not (Path(result["files"]) / "_extra" / "1" / "again.dcm").exists()  # the duplicate is set aside


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"source": "x"}, r"^extra_sources: expected a list, got \{'source': 'x'\}$"),
        (["x"], r"^extra_sources\[0\]: expected JSON \(dict\), got 'x'"),
        ([{"source": "x", "labels": "y", "path": "z"}], r"^extra_sources\[0\]: unknown key\(s\) 'path' "),
        ([{"source": "x"}], r"^extra_sources\[0\]\.labels: must be non-empty text, got 'None'$"),
        ([{"source": "a\nb", "labels": "y"}], r"^extra_sources\[0\]\.source: 'a\\nb' has control characters"),
        ([{"source": "x", "labels": "y", "label_key": "1; DROP"}], r"^extra_sources\[0\]\.label_key: '1; DROP' is"),
    ],
)
def test_hostile_extra_sources_are_one_line_errors(two_cohorts, tmp_path, extra, message):
    arguments = {"source": str(two_cohorts["original"] / "dicom"), "extra_sources": extra}
    with pytest.raises((ClaimedError, ParameterError), match=message):
        run("input.dicom", arguments, root=str(tmp_path))
    assert not list(tmp_path.rglob("metadata.parquet"))  # checked before anything was read


def _champion(models: Path, log: Path, new: Path) -> list[str]:
    """Version 1 of the deployed model (a store folder: labels, reference profile) and its readings of the new
    studies yesterday, all wrong, in the prediction log (simulated: the champion's subject here is its log)."""
    import json
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from claimed_airflow.core import prediction_log as plog
    from tests.test_monitoring import CLASSES, reference
    from tests.tiny_model import make_onnx_model_folder

    store = make_onnx_model_folder(models / MODEL / "1", size=32)  # a tiny classifier: it scores nothing here
    (store / "labels.json").write_text(json.dumps({"classes": CLASSES, "image_size": 32}))
    (store / "reference_profile.json").write_text(json.dumps(reference(np.random.default_rng(26))))
    metadata = pd.read_parquet(run("input.dicom", {"source": str(new / "dicom")}, root=str(log / "read"))["metadata"])
    labels = pd.read_csv(new / "by_uid.csv").set_index("SOPInstanceUID")["label"]
    at = (datetime.now(UTC) - timedelta(hours=20)).isoformat()
    for study, rows in metadata.groupby("StudyInstanceUID"):
        wrong = [CLASSES[1 - CLASSES.index(labels[uid])] for uid in rows["SOPInstanceUID"]]
        records = rows.assign(prediction=wrong, score=0.9, ended_at=at, image_mean=120.0).to_dict("records")
        plog.write(records, str(log), MODEL, "1", study)
    return list(metadata["SOPInstanceUID"])


MODEL = "chestxray_mobilenet_v2"


@pytest.mark.e2e
def test_an_alert_retrains_on_the_union_and_compares_champion_and_challenger(
    run_dag, airflow_home, output_root, small_cohort, two_cohorts, tmp_path
):
    """model_monitoring alerts (the champion's accuracy on the labelled studies) and names the labelled studies in
    its retrain event; model_retraining trains the flagship on the union, scores them with the new version and
    compares. The flagship run it triggers is run by tests/queued_run.py (dag.test() runs no queued run)."""
    import json
    import os
    import subprocess
    import sys
    import time

    from airflow.dag_processing.dagbag import DagBag

    from claimed_airflow.core.storage import safe_name
    from tests.flagship import FLAGSHIP_FAST

    pytest.importorskip("torchvision")
    new, models, log = two_cohorts["new"], tmp_path / "models", tmp_path / "log"
    uids = _champion(models, log, new)
    extra = [{"source": str(new / "dicom"), "labels": str(new / "by_uid.csv"), "label_key": "SOPInstanceUID"}]
    feedback = {"labels": str(new / "by_uid.csv"), "model_name": MODEL, "log_root": str(log)}
    assert run("monitoring.feedback", feedback, root=str(tmp_path / "out"))["matched"] == len(uids) == 6
    roots = {"log_root": str(log), "models_root": str(models)}
    monitoring = {"model_name": MODEL, "window_days": 2, "history_days": 2, "min_labelled": 5, **roots}
    state, tasks, _ = run_dag("model_monitoring", {**monitoring, "window_end": "", "retrain_sources": extra})
    assert state == "success" and tasks["retrain_signal"] == "success", tasks  # the alert: accuracy 0 < 0.9 - 0.1

    result = tmp_path / "flagship.json"
    with open(tmp_path / "queued_run.log", "w") as output:  # not a pipe: nobody reads it while dag.test() runs
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "tests.queued_run", "dicom_to_deployment", str(result)],
            cwd=Path(__file__).resolve().parents[1],
            env=os.environ.copy(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(600):  # it imports Airflow and parses the dags folder first
            if Path(f"{result}.ready").exists() or scheduler.poll() is not None:
                break
            time.sleep(0.5)
        assert Path(f"{result}.ready").exists(), (tmp_path / "queued_run.log").read_text()[-2000:]
        folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
        dag = DagBag(dag_folder=str(folder / "model_retraining.py")).get_dag("model_retraining")
        dag.get_task("retrain").poke_interval = 1  # the deferred wait polls the triggered run's state
        conf = {"extra_sources": [], "flagship_conf": {**FLAGSHIP_FAST, **small_cohort}, "window_days": 2, **roots}
        retraining = dag.test(run_conf=conf)  # extra_sources: [] -> those of the newest retrain event
        tasks = {ti.task_id: str(ti.state) for ti in retraining.get_task_instances()}
        assert str(retraining.state) == "success" and set(tasks.values()) == {"success"}, tasks
        scheduler.wait(timeout=120)
        flagship = json.loads(result.read_text())
    finally:
        scheduler.kill()
    assert flagship["state"] == "success", flagship
    trained = output_root / "dicom_to_deployment" / safe_name(flagship["test_run_id"]) / "train" / "manifest.json"
    table = pd.read_csv(Path(json.loads(trained.read_text())["inputs"]["images"]["uri"]) / "index.csv")
    train = table[table["split"] == "train"]
    assert set(train["source"]) == {0, 1} and len(table[table["source"] == 1]) == 6  # the training set: the union
    summary = output_root / "model_retraining" / safe_name(retraining.run_id) / "compare" / "summary.json"
    versions = json.loads(summary.read_text())["versions"]
    assert (versions["champion"], versions["challenger"], versions["images"]) == ("1", "2", 6)
    assert versions["accuracy"]["1"] == 0.0 < versions["accuracy"]["2"] and versions["better"] == "2"
    assert (models / MODEL / "2" / "reference_profile.json").exists()  # deployed by the flagship's gate
