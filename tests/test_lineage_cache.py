"""Reproducibility and lineage: caching, ``claimed-airflow reproduce`` and OpenLineage events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claimed_airflow.core.storage import safe_name


def _manifest(output_root: Path, dag_id: str, run_id: str, task_id: str) -> dict:
    return json.loads((output_root / dag_id / safe_name(run_id) / task_id / "manifest.json").read_text())


def test_cache_reuses_unchanged_tasks_and_recomputes_changed_ones(run_dag, small_predictions, output_root):
    dag = "claimed_test_cache"
    conf = {"table": str(small_predictions), "condition": "label == prediction"}
    state, _, first = run_dag(dag, conf)
    assert state == "success"
    assert not _manifest(output_root, dag, first, "kept")["cache"]["hit"]

    state, _, second = run_dag(dag, conf)
    assert state == "success"
    for task in ("kept", "scored", "metrics", "only_a"):
        cache = _manifest(output_root, dag, second, task)["cache"]
        assert cache["hit"] and cache["from"].endswith(f"{safe_name(first)}/{task}/manifest.json"), task

    state, _, third = run_dag(dag, {**conf, "condition": "label == 'b'"})
    assert state == "success"
    hits = {t: _manifest(output_root, dag, third, t)["cache"]["hit"] for t in ("kept", "scored", "metrics", "only_a")}
    assert hits == {"kept": False, "scored": False, "metrics": False, "only_a": True}


def test_corrupted_cached_output_is_detected_and_recomputed(run_dag, small_predictions, output_root):
    dag = "claimed_test_cache"
    conf = {"table": str(small_predictions), "condition": "prediction == 'b'"}
    _, _, first = run_dag(dag, conf)
    metrics = Path(_manifest(output_root, dag, first, "metrics")["outputs"]["metrics"]["uri"])
    metrics.write_text('{"accuracy": 1.0}')
    state, _, second = run_dag(dag, conf)
    assert state == "success"
    assert _manifest(output_root, dag, second, "kept")["cache"]["hit"]
    recomputed = _manifest(output_root, dag, second, "metrics")
    assert not recomputed["cache"]["hit"]
    assert json.loads(Path(recomputed["outputs"]["metrics"]["uri"]).read_text())["count"] == 3


def test_reproduce_matches_then_names_the_changed_input(tmp_path, shared_data):
    import shutil
    import subprocess
    import sys

    from claimed_airflow.core.runner import run

    source = tmp_path / "dicom"
    source.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(shared_data / "dicom" / "pydicom" / name, source / name)
    read = run("input.dicom", {"source": str(source)}, root=str(tmp_path / "out"))
    images = run(
        "transform.dicom_to_images",
        {"metadata": read["metadata"], "files": read["files"], "size": 16},
        root=str(tmp_path / "out"),
    )
    cli = [str(Path(sys.executable).parent / "claimed-airflow"), "reproduce"]
    same = subprocess.run([*cli, images["manifest"]], capture_output=True, text=True, timeout=120)
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["match"] is True
    assert same.stderr.strip().endswith("match: outputs match the manifest")

    shutil.copy(shared_data / "dicom" / "pydicom" / "MR_small_RLE.dcm", Path(read["files"]) / "MR_small.dcm")
    changed = subprocess.run([*cli, images["manifest"]], capture_output=True, text=True, timeout=120)
    assert changed.returncode == 1
    report = json.loads(changed.stdout)
    assert report["inputs"]["files"]["match"] is False and report["inputs"]["metadata"]["match"] is True
    assert "input 'files' changed since the manifest" in changed.stderr


def test_openlineage_events_carry_the_artifacts_of_each_task(
    run_dag, small_predictions, output_root, openlineage_events
):
    pytest.importorskip("airflow.providers.openlineage")
    _, tasks, run_id = run_dag("claimed_test_gate", {"table": str(small_predictions), "condition": "accuracy > 0.5"})
    assert set(tasks.values()) == {"success"}
    events = [json.loads(line) for line in openlineage_events.read_text().splitlines() if line.strip()]
    complete = {
        e["job"]["name"].split(".", 1)[1]: e
        for e in events
        if e["eventType"] == "COMPLETE"
        and e["job"]["name"].startswith("claimed_test_gate.")
        and e["run"]["facets"].get("claimed_component", {}).get("manifest", "").find(safe_name(run_id)) > 0
    }
    assert set(complete) == {"filter", "metrics", "blessing", "after_gate"}
    task_dir = output_root / "claimed_test_gate" / safe_name(run_id)
    filt = complete["filter"]
    assert [(d["namespace"], d["name"]) for d in filt["inputs"]] == [("file", str(small_predictions))]
    assert [(d["namespace"], d["name"]) for d in filt["outputs"]] == [
        ("file", str(task_dir / "filter" / "table.parquet"))
    ]
    assert [d["name"] for d in complete["after_gate"]["inputs"]] == [str(task_dir / "filter" / "table.parquet")]
    assert {d["name"] for d in complete["metrics"]["outputs"]} == {
        str(task_dir / "metrics" / "metrics.json"),
        str(task_dir / "metrics" / "confusion_matrix.png"),
    }
    facet = complete["metrics"]["run"]["facets"]["claimed_component"]
    assert facet["component"] == "metric.confusion_matrix" and facet["parameters"]["label_column"] == "label"


def test_deploy_updates_the_model_asset_that_schedules_another_dag(run_dag, tmp_path):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from claimed_airflow.assets import model_asset

    model = tmp_path / "model"
    model.mkdir()
    (model / "w.bin").write_bytes(b"x")
    state, tasks, run_id = run_dag("claimed_test_deploy_asset", {"model": str(model)})
    assert state == "success", tasks
    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == model_asset("asset_test").uri)
        ).all()
        extras = [e.extra for e in events if e.source_run_id == run_id]
    assert len(extras) == 1 and extras[0]["model_version"] >= 1
    assert extras[0]["model_uri"].endswith(f"models/asset_test/{extras[0]['model_version']}")
    from airflow.dag_processing.dagbag import DagBag

    consumer = DagBag(dag_folder=str(Path(__file__).parent / "dags" / "claimed_test_dags.py")).get_dag(
        "claimed_test_on_model"
    )
    assert [a.uri for a in consumer.timetable.asset_condition.objects] == [model_asset("asset_test").uri]
