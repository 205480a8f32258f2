"""One pod, two engines: for every task, the exported KFP step asks for what the kubernetes engine's pod has.

The engine's pods are built by the real KubernetesPodOperator (cncf.kubernetes provider) in the main
environment (``engine_pods.py``, run with ``.venv/bin/python``: kfp caps ``kubernetes<31``, which the
current provider cannot use); the pipeline is compiled here by ``export-kfp``. Both read the same
settings (Airflow Variables / ``[claimed]`` options, given here as environment variables). Compared
field by field: image, resources, environment, secrets (as env and as volumes), tolerations, node
selector, image pull secrets, security context, timeout, retries, labels.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

pytest.importorskip("kfp.dsl")

from claimed_airflow.cli import main as cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ENGINE_PYTHON = Path(os.environ.get("CLAIMED_ENGINE_PYTHON", ROOT / ".venv" / "bin" / "python"))
SETTINGS = {
    "AIRFLOW__CLAIMED__IMAGE_PULL_SECRETS": "regcred, mirror",
    "AIRFLOW__CLAIMED__GPU_NODE_SELECTOR": '{"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}',
    "AIRFLOW_VAR_CLAIMED_TOLERATIONS": '[{"key": "claimed", "operator": "Exists", "effect": "NoSchedule"}]',
}
OPTIONS_DAG = """
from datetime import datetime, timedelta
from airflow.sdk import DAG
from claimed_airflow.operators import RowsFilterOperator, MobileNetV2TrainOperator
with DAG("pod_options", schedule=None, start_date=datetime(2026, 1, 1)):
    rows = RowsFilterOperator(
        task_id="rows", table="s3://b/t.csv", condition="a > 1", kubernetes=dict(
            image="registry.example.com/claimed:7",
            cpu="3", memory="5Gi", env_vars={"AWS_ENDPOINT_URL": "http://minio:9000", "N": 3},
            secrets=[{"env": "AWS_SECRET_ACCESS_KEY", "secret": "s3", "key": "secret_key"},
                     {"secret": "certs", "mount": "/etc/claimed/certs"}],
            tolerations=[{"key": "dedicated", "operator": "Equal", "value": "etl", "effect": "NoSchedule"}],
            node_selector={"pool": "etl"}, image_pull_secrets=["private"]),
        execution_timeout=timedelta(minutes=20), retries=2, retry_delay=timedelta(seconds=30))
    MobileNetV2TrainOperator(
        task_id="train", images="s3://b/images", kubernetes={"gpus": 2, "memory": "16Gi"}, retries=1)
"""
DAGS = [
    (ROOT / "dags" / "dicom_to_deployment.py", "dicom_to_deployment"),
    (ROOT / "dags" / "spark_etl.py", "spark_etl"),
    (None, "pod_options"),
]


def _engine_pods(dag_file: Path, dag_id: str, home: Path) -> dict:
    if not ENGINE_PYTHON.exists():
        pytest.skip(f"the main environment ({ENGINE_PYTHON}) builds the engine's pods; create it with .ci/setup")
    env = {**os.environ, **SETTINGS, "AIRFLOW_HOME": str(home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [str(ENGINE_PYTHON), str(Path(__file__).with_name("engine_pods.py")), str(dag_file), dag_id],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _kfp_tasks(pipeline_yaml: Path) -> dict[str, dict]:
    """task name -> (container, kubernetes platform config, task spec), through sub-pipelines."""
    spec, platform = yaml.safe_load_all(pipeline_yaml.read_text())
    executors = spec["deploymentSpec"]["executors"]
    configs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    found = {}
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    for dag in dags:
        for name, task in dag["tasks"].items():
            label = spec["components"][task["componentRef"]["name"]].get("executorLabel")
            if label:
                found[name] = {"container": executors[label]["container"], "k8s": configs[label], "task": task}
    return found


def _secrets_of_pod(container: dict, pod_spec: dict) -> tuple[list, list]:
    env = sorted(
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"], e["name"])
        for e in container.get("env") or []
        if "valueFrom" in e
    )
    volumes = {v["name"]: v["secret"]["secretName"] for v in pod_spec.get("volumes") or [] if "secret" in v}
    mounts = sorted((volumes[m["name"]], m["mountPath"]) for m in container["volumeMounts"] if m["name"] in volumes)
    return env, mounts


def _secrets_of_step(k8s: dict) -> tuple[list, list]:
    env = sorted(
        (s["secretName"], item["secretKey"], item["envVar"])
        for s in k8s.get("secretAsEnv", [])
        for item in s["keyToEnv"]
    )
    mounts = sorted((s["secretName"], s["mountPath"]) for s in k8s.get("secretAsVolume", []))
    return env, mounts


@pytest.mark.parametrize("dag_file, dag_id", DAGS, ids=[d for _, d in DAGS])
def test_every_task_runs_the_same_pod_on_kubeflow_and_the_kubernetes_engine(dag_file, dag_id, tmp_path, monkeypatch):
    if dag_file is None:
        dag_file = tmp_path / "pod_options.py"
        dag_file.write_text(OPTIONS_DAG)
    for name, value in SETTINGS.items():
        monkeypatch.setenv(name, value)
    pipeline_yaml = tmp_path / "pipeline.yaml"
    assert cli(["export-kfp", str(dag_file), "--dag-id", dag_id, "-o", str(pipeline_yaml)]) == 0
    steps = _kfp_tasks(pipeline_yaml)
    pods = _engine_pods(dag_file, dag_id, tmp_path / "engine-home")
    # the reviewer's approval runs in the Airflow worker, no pod; on Kubeflow it is a step (kfp/approval.py)
    approval = {"approval"} if dag_id == "dicom_to_deployment" else set()
    # the step listing an input's shards (dsl.ParallelFor's items) runs in the worker in Airflow (shard_indexes)
    listing = {n for n in steps if n.startswith("claimed-shard-items")}
    gates = {n for n in steps if n.endswith("blessed")}
    assert {t.replace("_", "-") for t in pods} == set(steps) - gates - approval - listing
    for task_id, engine in pods.items():
        pod, step = engine["pod"], steps[task_id.replace("_", "-")]
        container, k8s, kfp_task = step["container"], step["k8s"], step["task"]
        (main,) = [c for c in pod["spec"]["containers"] if c["name"] == "base"]
        where = f"{dag_id}.{task_id}"
        assert container["image"] == main["image"], where
        # resources: requests of cpu and memory, limits of memory and GPUs, no CPU limit
        requests, limits = main["resources"]["requests"], main["resources"]["limits"]
        got = container["resources"]
        assert got["resourceCpuRequest"] == requests["cpu"] and "cpu" not in limits, where
        assert "resourceCpuLimit" not in got, where
        assert got["resourceMemoryRequest"] == requests["memory"], where
        assert got["resourceMemoryLimit"] == limits["memory"], where
        gpus = limits.get("nvidia.com/gpu")
        assert (got.get("accelerator") or {}).get("resourceCount") == gpus, where
        if gpus:
            assert got["accelerator"]["resourceType"] == "nvidia.com/gpu", where
        # environment (plain values) and secrets (as env and as volumes)
        plain = {e["name"]: e["value"] for e in main.get("env") or [] if "value" in e}
        assert {e["name"]: e["value"] for e in container.get("env") or []} == plain, where
        assert not main.get("envFrom"), where  # every key of a secret as env: refused by the export
        assert _secrets_of_step(k8s) == _secrets_of_pod(main, pod["spec"]), where
        # scheduling
        assert [{k: v for k, v in t.items() if v is not None} for t in k8s.get("tolerations", [])] == [
            {k: v for k, v in t.items() if v is not None} for t in pod["spec"].get("tolerations") or []
        ], where
        assert (k8s.get("nodeSelector") or {}).get("labels", {}) == (pod["spec"].get("nodeSelector") or {}), where
        assert [s["secretName"] for s in k8s.get("imagePullSecret", [])] == [
            s["name"] for s in pod["spec"].get("imagePullSecrets") or []
        ], where
        # security: the identity is set on the step; KFP's compiler adds no-escalation, drop ALL, seccomp
        security = main["securityContext"]
        for key in ("runAsUser", "runAsGroup", "runAsNonRoot"):
            assert str(k8s["securityContext"][key]).lower() == str(security[key]).lower(), (where, key)
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, where
        # timeout, retries, labels
        assert k8s.get("activeDeadlineSeconds") == (
            str(pod["spec"]["activeDeadlineSeconds"]) if pod["spec"].get("activeDeadlineSeconds") else None
        ), where
        assert (kfp_task.get("retryPolicy") or {}).get("maxRetryCount", 0) == engine["retries"], where
        labels = k8s["podMetadata"]["labels"]
        assert labels.items() <= pod["metadata"]["labels"].items(), where
        assert k8s["podMetadata"]["annotations"].items() <= pod["metadata"]["annotations"].items(), where


def test_the_options_dag_exercises_every_field(tmp_path):
    """The comparison above is not vacuous: the options DAG sets each field to something non-default."""
    dag_file = tmp_path / "pod_options.py"
    dag_file.write_text(OPTIONS_DAG)
    pipeline_yaml = tmp_path / "pipeline.yaml"
    assert cli(["export-kfp", str(dag_file), "--dag-id", "pod_options", "-o", str(pipeline_yaml)]) == 0
    steps = _kfp_tasks(pipeline_yaml)
    rows, train = steps["rows"], steps["train"]
    assert rows["container"]["image"] == "registry.example.com/claimed:7"
    assert rows["k8s"]["activeDeadlineSeconds"] == "1200"
    assert rows["k8s"]["secretAsEnv"][0]["keyToEnv"] == [{"envVar": "AWS_SECRET_ACCESS_KEY", "secretKey": "secret_key"}]
    assert rows["k8s"]["secretAsVolume"][0]["mountPath"] == "/etc/claimed/certs"
    assert rows["k8s"]["nodeSelector"]["labels"] == {"pool": "etl"}
    assert {"name": "N", "value": "3"} in rows["container"]["env"]
    assert rows["task"]["retryPolicy"]["maxRetryCount"] == 2
    assert train["container"]["resources"]["accelerator"]["resourceCount"] == "2"
    assert train["k8s"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
