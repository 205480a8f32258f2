"""The ``claimed-airflow`` command, run as users and containers run it: in a subprocess."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [str(Path(sys.executable).parent / "claimed-airflow")]


def cli(*args: str, cwd=None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def test_list_and_describe():
    listed = cli("list")
    assert listed.returncode == 0
    assert "input.dicom" in listed.stdout and "train.mobilenet_v2" in listed.stdout
    described = cli("describe", "train.mobilenet_v2", "--json")
    spec = json.loads(described.stdout)
    assert spec["resources"]["gpus"] == 1
    assert {p["name"]: p["type"] for p in spec["parameters"]}["epochs"] == "int"
    assert "epochs: int = 20" in cli("describe", "train.mobilenet_v2").stdout


def test_run_prints_output_uris(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,2\n3,4\n")
    done = cli(
        "run",
        "filter.rows",
        "--table",
        str(table),
        "--condition=a > 1",
        "--output-root",
        str(tmp_path),
        "--dag-id",
        "d",
        "--run-id",
        "r",
        "--task-id",
        "t",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["output"] == str(tmp_path / "d" / "r" / "t" / "table.parquet")
    assert result["rows_out"] == 1 and Path(result["manifest"]).exists()


def test_bad_input_is_one_line_and_non_zero(tmp_path):
    done = cli("run", "train.mobilenet_v2", "--images", str(tmp_path), "--epochs", "abc")
    assert done.returncode == 2
    assert done.stderr.strip() == "claimed-airflow: error: epochs: expected an integer, got 'abc'"
    missing = cli("run", "input.dicom", "--source", str(tmp_path / "absent"), "--output-root", str(tmp_path))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == (
        f"claimed-airflow: error: source: input path does not exist: {tmp_path / 'absent'}"
    )
    unknown = cli("run", "filter.rows", "--tabel", "x")
    assert unknown.returncode == 2 and "unknown parameter --tabel" in unknown.stderr
    assert cli("describe", "nope.nope").returncode == 2


def test_catalog_documents_every_component(tmp_path):
    from claimed_airflow.core.registry import components

    done = cli("catalog", "-o", str(tmp_path / "catalog.md"))
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "catalog.md").read_text()
    for spec in components().values():
        assert f"### {spec.name}" in text and f"claimed-airflow run {spec.name}" in text
        for param in spec.parameters:
            assert f"| `{param.name}` | `{param.type}` |" in text, (spec.name, param.name)
    page = cli("catalog", "-o", str(tmp_path / "catalog.html"))
    assert page.returncode == 0, page.stderr
    html = (tmp_path / "catalog.html").read_text()
    assert html.startswith("<!doctype html>") and "<pre>" not in html.split("<h2", 1)[0]
    assert "<table>" in html and '<h3 id="inputdicom">input.dicom</h3>' in html


@pytest.mark.e2e
def test_demo_runs_the_flagship_dag_and_prints_the_model(tmp_path, small_cohort):
    """README's demo, small (its defaults run in CI's .ci/newcomer step)."""
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("the torch extra is not installed")
    root = Path(__file__).resolve().parents[1]
    conf = {"epochs": 1, "image_size": 32, "min_accuracy": 0, "min_over_majority": -1, "framework": "torch"}
    conf.update(small_cohort)
    done = subprocess.run(
        [
            *CLI,
            "demo",
            "--dags-folder",
            str(root / "dags"),
            "--airflow-home",
            str(tmp_path / "home"),
            "--output-root",
            str(tmp_path / "out"),
            "--conf",
            json.dumps(conf),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # its own embedded database, although this process's environment names the test session's
    assert os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:///")
    assert (tmp_path / "home" / "airflow.db").is_file()
    model = done.stdout.split("deployed model: ", 1)[1].splitlines()[0].strip()
    assert model == str(tmp_path / "out" / "models" / "chestxray_mobilenet_v2" / "1")
    assert (Path(model) / "model.onnx").exists()  # PyTorch's, served through onnxruntime
    # the demo ends with the served model answering a real HTTP request (Open Inference Protocol V2)
    assert "/v2/models/chestxray_mobilenet_v2/infer  (" in done.stdout
    answer = json.loads(done.stdout.split("  answer: ", 1)[1].splitlines()[0])
    labels = {o["name"]: o["data"] for o in answer["outputs"]}["label"]
    assert answer["model_name"] == "chestxray_mobilenet_v2" and labels[0] in {"COVID-19", "No Finding"}


@pytest.mark.e2e
def test_a_failed_demo_names_the_task_and_its_error(tmp_path):
    """Outside a checkout (no ./dags) the demo runs the DAG installed with the package; one task broken on
    purpose (a labels table that does not exist): the user sees the task, its one-line error and the log."""
    missing = tmp_path / "no-such-labels.csv"
    done = cli("demo", "--conf", json.dumps({"labels": str(missing)}), cwd=tmp_path, timeout=600)
    assert done.returncode != 0
    assert str(Path("claimed_airflow", "example_dags", "dicom_to_deployment.py")) in done.stdout, done.stdout
    log = tmp_path / ".airflow" / "demo.log"
    assert done.stderr.splitlines() == [
        f"task dicom_input failed: input.dicom: labels: input path does not exist: {missing}",
        f"claimed-airflow: error: the dicom_to_deployment run failed (task dicom_input); log: {log}",
    ], done.stderr
    assert "Traceback" in log.read_text()  # the details stay in the log
