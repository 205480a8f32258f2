"""The flagship on every engine and deploy target: each engine and each target at least once.

Each run is costly (minutes on 2 cores), so one run asserts several subjects:

- engine local, deploy_target watson_ml: the real ibm-watsonx-ai client against the loopback Watson ML stub;
  in the same run PyTorch chosen by the framework Param alone, the e-mail to notify_to (a real SMTP server on
  loopback) and the cohort step through a real spark-submit on ``local[*]`` (cohort_engine spark);
- engine kubernetes (every task a pod, built by the real KubernetesPodOperator and its command run
  here, as in test_kubernetes_engine; train asks for a GPU), deploy_target watson_ml from a pod, 3 shards
  (a pod each; their merge equals one unsharded task's output);
- engine local, deploy_target kserve, output root on S3 (moto server): an InferenceService sent to the
  Kubernetes API stub, the model where the cluster reads it (object storage);
- deploy_target local (the default): tests/test_training_outcome.py (every default Param) and tests/test_pacs.py.

The deterministic steps write identical outputs (content hashes) in the pods and in this process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from claimed_airflow.core.runner import run
from claimed_airflow.core.storage import safe_name
from tests.flagship import (
    DETERMINISTIC_TASKS,
    FLAGSHIP_FAST,
    deterministic_hashes,
    output_hashes,
    rerun_in_process,
)

pytest.importorskip("airflow.providers.cncf.kubernetes", reason="needs the kubernetes extra")
pytest.importorskip("torchvision", reason="the flagship runs here train with PyTorch (the torch extra)")

DAG_ID = "dicom_to_deployment"


def task_dir(output_root: Path, run_id: str, task_id: str) -> Path:
    return output_root / DAG_ID / safe_name(run_id) / task_id


def manifest(output_root: Path, run_id: str, task_id: str) -> dict:
    return json.loads((task_dir(output_root, run_id, task_id) / "manifest.json").read_text())


@pytest.mark.e2e
@pytest.mark.timeout(2400)
def test_local_engine_trains_with_torch_cohort_on_spark_notifies_and_serves_on_watson_ml(
    run_dag, output_root, local_kubelet, isolated_env, small_cohort, smtp, spark_submissions, tmp_path, monkeypatch
):
    """One run, several subjects: PyTorch by one Param, the cohort step through spark-submit, the e-mail, Watson ML."""
    pytest.importorskip("ibm_watsonx_ai")
    from tests.wml_stub import API_KEY, SPACE_ID, USERNAME, WatsonMLStub

    submitted = spark_submissions
    cohort = "label IS NOT NULL AND (PatientAge IS NULL OR PatientAge >= 40)"
    conf = {**FLAGSHIP_FAST, **small_cohort, "engine": "local", "deploy_target": "watson_ml"}
    conf.update({"cohort_engine": "spark", "cohort": cohort, "test_fraction": 0.3, "notify_to": ["ops@example.com"]})
    with WatsonMLStub(tmp_path) as wml:
        connection = {"conn_type": "watson_ml", "host": wml.url, "login": USERNAME, "password": API_KEY}
        connection["extra"] = {"space_id": SPACE_ID, "verify": wml.cert}
        monkeypatch.setenv("AIRFLOW_CONN_WATSON_ML_DEFAULT", json.dumps(connection))
        state, tasks, run_id = run_dag(DAG_ID, conf)
    assert state == "success", tasks
    assert tasks["kserve"] == "skipped" and tasks["watson_ml"] == "success", tasks
    assert not local_kubelet  # engine local: no pod

    # Watson ML: the real client stored the model and deployed it; the API key only in the connection
    assert "POST /ml/v4/models" in wml.calls() and len(wml.deployments) == 1
    deployed = manifest(output_root, run_id, "watson_ml")
    assert deployed["values"]["deployment_id"] == next(iter(wml.deployments))
    assert API_KEY not in json.dumps(deployed)

    # PyTorch by the framework Param alone: its files in the deployed model, none of Keras
    model = Path(manifest(output_root, run_id, "deploy")["values"]["model_uri"])
    assert (model / "model.onnx").exists() and (model / "model.pt").exists() and not (model / "model.keras").exists()
    assert json.loads((model / "reference_profile.json").read_text())["training_images"] > 0  # model_monitoring's
    train = manifest(output_root, run_id, "train")
    assert train["parameters"]["framework"] == "torch" and train["values"]["device"] == "cpu"
    robustness = task_dir(output_root, run_id, "robustness") / "robustness.json"
    assert json.loads(robustness.read_text())["kind"] == "image"

    # notify: through the smtp_default connection to the SMTP server on loopback
    (message,) = smtp.messages
    assert message.rcpt_tos == ["ops@example.com"]
    assert b"Subject: [claimed] dicom_to_deployment: model blessed" in message.content

    # the cohort step alone went to Spark (local[*]), and selected what the condition says
    (command,) = submitted
    application = next(i for i, a in enumerate(command) if a.endswith(".py"))
    assert (Path(command[application]).name, command[application + 1]) == ("launcher.py", "filter.spark_cohort_split")
    assert command[command.index("--master") + 1] == "local[*]"
    selected = pd.read_parquet(task_dir(output_root, run_id, "cohort") / "cohort.parquet")
    metadata = pd.read_parquet(task_dir(output_root, run_id, "dicom_input") / "metadata.parquet")
    wanted = metadata[metadata["label"].notna() & (metadata["PatientAge"].isna() | (metadata["PatientAge"] >= 40))]
    assert 0 < len(selected) == len(wanted) < len(metadata)
    assert sorted(selected["SOPInstanceUID"]) == sorted(wanted["SOPInstanceUID"])
    index = pd.read_csv(task_dir(output_root, run_id, "dicom_to_images") / "merged" / "index.csv")
    assert sorted(index["SOPInstanceUID"]) == sorted(wanted["SOPInstanceUID"])  # images of the cohort only
    assert set(index["split"]) <= {"train", "test"}

    # the seeded split is a function of the key: the in-process backend (DuckDB) gives the same one
    arguments = {"table": str(task_dir(output_root, run_id, "dicom_input") / "metadata.parquet"), "where": cohort}
    local = run(
        "filter.spark_cohort_split",
        {**arguments, "test_fraction": 0.3, "seed": 42, "backend": "local"},
        root=str(tmp_path),
    )
    by_key = pd.read_parquet(local["output"]).set_index("SOPInstanceUID")["split"]
    assert selected.set_index("SOPInstanceUID")["split"].sort_index().equals(by_key.sort_index())


@pytest.mark.e2e
@pytest.mark.timeout(2400)
def test_kubernetes_engine_gpu_training_serves_on_watson_ml(
    run_dag, output_root, local_kubelet, isolated_env, small_cohort, tmp_path, monkeypatch
):
    pytest.importorskip("ibm_watsonx_ai")
    from tests.wml_stub import API_KEY, SPACE_ID, USERNAME, WatsonMLStub

    with WatsonMLStub(tmp_path) as wml:
        conn = {"conn_type": "watson_ml", "host": wml.url, "login": USERNAME, "password": API_KEY}
        conn["extra"] = {"space_id": SPACE_ID, "verify": wml.cert}
        monkeypatch.setenv("AIRFLOW_CONN_WATSON_ML_DEFAULT", json.dumps(conn))
        conf = {**FLAGSHIP_FAST, **small_cohort, "engine": "kubernetes", "deploy_target": "watson_ml", "shards": 3}
        state, tasks, run_id = run_dag(DAG_ID, conf)
    assert state == "success", tasks
    assert tasks["watson_ml"] == "success" and tasks["kserve"] == "skipped", tasks
    pods = {p.metadata.labels["task_id"]: p for p in local_kubelet}
    # every claimed task that ran, ran as a pod (approval, a reviewer's step, and the shard list, a small Python
    # task that hands the input's shard indexes to the mapped step, stay in Airflow)
    assert set(pods) == {t for t, s in tasks.items() if s == "success"} - {"approval", "dicom_input_shards"}
    train = pods["train"].spec.containers[0]
    assert train.resources.limits["nvidia.com/gpu"] == "1" and train.image.endswith("-gpu")
    assert "nvidia.com/gpu" not in (pods["cohort"].spec.containers[0].resources.limits or {})
    assert len(wml.deployments) == 1  # the watson_ml pod stored and deployed the model
    assert API_KEY not in json.dumps([p.to_dict() for p in local_kubelet], default=str)  # only in the connection

    # the deterministic steps: the pods wrote the same bytes as the same steps run in this process
    in_pods = deterministic_hashes(lambda t: task_dir(output_root, run_id, t) / "manifest.json")
    in_process = rerun_in_process(lambda t: task_dir(output_root, run_id, t) / "manifest.json", str(tmp_path / "local"))
    assert in_pods == in_process and set(in_pods) == set(DETERMINISTIC_TASKS)
    assert all(h.startswith("sha256:") for outputs in in_pods.values() for h in outputs.values())

    # the shards param: one pod per shard, and their merge is what one unsharded task writes
    shard_pods = [p for p in local_kubelet if p.metadata.labels["task_id"] == "dicom_to_images_shard"]
    assert len(shard_pods) == 3
    inputs = {"metadata": manifest(output_root, run_id, "cohort")["outputs"]["output"]["uri"]}
    inputs["files"] = manifest(output_root, run_id, "dicom_input")["outputs"]["files"]["uri"]
    unsharded = run("transform.dicom_to_images", {**inputs, "size": 32}, root=str(tmp_path / "unsharded"))
    assert output_hashes(unsharded["manifest"])["images"] == in_pods["dicom_to_images"]["merged"]


@pytest.mark.e2e
@pytest.mark.timeout(2400)
def test_local_engine_serves_on_kserve_from_s3(run_dag, s3_endpoint, isolated_env, small_cohort, tmp_path, monkeypatch):
    from tests.kube_stub import InferenceServiceStub

    fs = s3_endpoint
    root = "s3://claimed/flagship"  # KServe reads the model from object storage, so the outputs go there
    monkeypatch.setenv("AIRFLOW__CLAIMED__OUTPUT_ROOT", root)
    monkeypatch.setenv("CLAIMED_OUTPUT_ROOT", root)
    with InferenceServiceStub() as stub:
        stub.connection(tmp_path, monkeypatch, conn_id="kubernetes_default", namespace="models")
        state, tasks, run_id = run_dag(
            DAG_ID, {**FLAGSHIP_FAST, **small_cohort, "engine": "local", "deploy_target": "kserve"}
        )
    assert state == "success", tasks
    assert tasks["kserve"] == "success" and tasks["watson_ml"] == "skipped", tasks

    def manifest_on_s3(task_id: str) -> dict:
        return json.loads(fs.cat(f"claimed/flagship/{DAG_ID}/{safe_name(run_id)}/{task_id}/manifest.json"))

    model = manifest_on_s3("train")["outputs"]["model"]["uri"]
    assert model.startswith(f"{root}/{DAG_ID}/") and fs.exists(model)  # the trained model is on S3
    (created,) = [r["body"] for r in stub.requests if r["method"] == "POST"]
    assert created["kind"] == "InferenceService" and created["metadata"]["name"] == "chestxray-mobilenet-v2"
    container = created["spec"]["predictor"]["containers"][0]
    assert container["env"] == [{"name": "STORAGE_URI", "value": model}]  # what KServe's storage initializer loads
    served = manifest_on_s3("kserve")
    assert served["parameters"]["storage_uri"] == model
    assert served["values"]["url"] == "http://chestxray-mobilenet-v2.models.example.com"
