"""engine=kubernetes: pods built through the real KubernetesPodOperator (no cluster), and their command run here.

No Kubernetes API server can run on this machine, so the pod is tested as the object the operator
would send (``build_pod_request_obj``), and its container command is run in a subprocess against
local data: it must produce the same outputs (content hashes) as the in-process engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from claimed_airflow import __version__
from claimed_airflow.core import registry
from claimed_airflow.core.runner import run
from claimed_airflow.core.storage import Scope

pytest.importorskip("airflow.providers.cncf.kubernetes", reason="needs the kubernetes extra")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "dags" / "sample_data" / "chestxray"
XCOM = "/airflow/xcom/return.json"
SCOPE = Scope(dag_id="k8s_dag", run_id="manual__2026-11-26T08:00:00+00:00", task_id="task")


def context_for(scope: Scope, dag=None) -> dict:
    ti = SimpleNamespace(
        dag_id=scope.dag_id, task_id=scope.task_id, run_id=scope.run_id, map_index=scope.map_index, try_number=1
    )
    return {"ti": ti, "run_id": scope.run_id, "dag": dag or SimpleNamespace(), "params": {}}


def placeholder(param):
    """A value of the parameter's type, written independently of the code under test."""
    if param.kind == "input":
        return f"s3://claimed-in/{param.name}/"
    base = param.type.removesuffix(" | None")
    if param.choices:
        return param.choices[-1]
    return {
        "int": 7,
        "float": 0.25,
        "bool": True,
        "list[str]": ["a b", "c"],
        "list[float]": [0.5, -1.25],
        "list[int]": [3, -4],
        "dict": {"k": [1, 2]},
        "list[dict]": [{"source": "s3://claimed-in/more/", "labels": "s3://claimed-in/more.csv"}],
    }.get(base, f"{param.name} = 'x' -1")


def cli_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def build_pod(operator, scope: Scope = SCOPE, root: str = "s3://claimed-out/root"):
    from claimed_airflow.operators.engines import kubernetes

    task = operator.engine_task(registry.get(operator.component), root, scope)
    pod_operator = kubernetes.pod_operator(task, context_for(scope))
    return pod_operator.build_pod_request_obj(context_for(scope), dry_run=True)


def test_dags_parse_without_the_engine_providers_or_heavy_libraries():
    """KubernetesPodOperator and SparkSubmitOperator (~3 s of imports each) load when a task runs, not at parse."""
    code = (
        "import runpy, sys\n"
        "for dag in ('dags/dicom_to_deployment.py', 'dags/spark_etl.py'):\n"
        "    runpy.run_path(dag)\n"
        "print(','.join(m for m in ('airflow.providers.cncf.kubernetes.operators.pod', "
        "'airflow.providers.apache.spark.operators.spark_submit', 'kubernetes', 'pyspark', 'pandas') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ""


@pytest.mark.parametrize("spec", list(registry.components().values()), ids=lambda s: s.name)
def test_every_operator_builds_its_pod(spec):
    import claimed_airflow.operators as operators
    from claimed_airflow.cli import parse_arguments

    values = {p.name: placeholder(p) for p in spec.arguments}
    operator = getattr(operators, spec.operator)(task_id="task", engine="kubernetes", **values)
    pod = build_pod(operator)
    container = pod.spec.containers[0]

    gpu = spec.resources.gpus > 0
    assert container.image == f"ghcr.io/claimed-framework/claimed-airflow:{__version__}{'-gpu' if gpu else ''}"
    assert container.command == ["claimed-airflow"]
    expected = ["run", spec.name, *[f"--{name}={cli_text(value)}" for name, value in values.items()]]
    expected += ["--output-root", "s3://claimed-out/root", "--dag-id", "k8s_dag"]
    expected += ["--run-id", SCOPE.run_id, "--task-id", "task", "--xcom-file", XCOM]
    assert container.args == expected
    # what the container's CLI parses back is what the operator was given
    parsed = parse_arguments(spec, container.args[2 : 2 + len(values)])
    assert spec.bind(parsed) == spec.bind(values)

    resources = container.resources
    assert resources.requests == {"cpu": spec.resources.cpu, "memory": spec.resources.memory}
    assert resources.limits.get("nvidia.com/gpu") == (str(spec.resources.gpus) if gpu else None)
    tolerations = [(t.key, t.operator, t.effect) for t in pod.spec.tolerations or []]
    assert tolerations == ([("nvidia.com/gpu", "Exists", "NoSchedule")] if gpu else [])

    assert pod.spec.security_context.run_as_non_root is True and pod.spec.security_context.run_as_user == 1000
    for each in pod.spec.containers:  # the component and the XCom sidecar
        assert each.security_context.allow_privilege_escalation is False
        assert each.security_context.capabilities.drop == ["ALL"]
    sidecar = [c for c in pod.spec.containers if c.name == "airflow-xcom-sidecar"]
    assert sidecar and any(m.mount_path == "/airflow/xcom" for m in container.volume_mounts)
    assert pod.metadata.labels["claimed-component"] == spec.name


def test_kubernetes_options_reach_the_pod():
    from claimed_airflow.core.options import KubernetesOptions
    from claimed_airflow.operators import MobileNetV2TrainOperator

    operator = MobileNetV2TrainOperator(
        task_id="train",
        images="s3://bucket/images",
        engine="kubernetes",
        kubernetes=KubernetesOptions(
            image="registry.example.com/claimed:1-gpu",
            namespace="ml",
            cpu="8",
            memory="32Gi",
            gpus=2,
            node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
            tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
            image_pull_secrets=["regcred"],
            secrets=[
                {"env": "AWS_SECRET_ACCESS_KEY", "secret": "s3-credentials", "key": "secret_key"},
                {"secret": "wandb"},
                {"secret": "certs", "mount": "/etc/claimed/certs"},
            ],
            env_vars={"AWS_ENDPOINT_URL": "http://minio.storage:9000"},
            pod_options={"service_account_name": "claimed-runner"},
        ),
    )
    pod = build_pod(operator)
    container = pod.spec.containers[0]
    assert pod.metadata.namespace == "ml" and container.image == "registry.example.com/claimed:1-gpu"
    assert container.resources.requests == {"cpu": "8", "memory": "32Gi"}
    assert container.resources.limits == {"memory": "32Gi", "nvidia.com/gpu": "2"}
    assert pod.spec.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert [(t.key, t.value, t.effect) for t in pod.spec.tolerations] == [("dedicated", "gpu", "NoSchedule")]
    assert [s.name for s in pod.spec.image_pull_secrets] == ["regcred"]
    assert pod.spec.service_account_name == "claimed-runner"
    env = {e.name: e for e in container.env}
    ref = env["AWS_SECRET_ACCESS_KEY"].value_from.secret_key_ref
    assert (ref.name, ref.key) == ("s3-credentials", "secret_key") and env["AWS_SECRET_ACCESS_KEY"].value is None
    assert env["AWS_ENDPOINT_URL"].value == "http://minio.storage:9000"
    assert env["CLAIMED_IMAGE"].value == "registry.example.com/claimed:1-gpu"
    assert [e.secret_ref.name for e in container.env_from] == ["wandb"]
    mounted = {m.mount_path: m.name for m in container.volume_mounts}
    volume = next(v for v in pod.spec.volumes if v.name == mounted["/etc/claimed/certs"])
    assert volume.secret.secret_name == "certs"
    assert "--images=s3://bucket/images" in container.args


def test_pod_is_hardened_and_times_out_with_the_task():
    """One definition (core.pod): seccomp, dropped capabilities, memory limit; execution_timeout is the deadline."""
    from datetime import timedelta

    from claimed_airflow.core.pod import container_security_context, pod_security_context
    from claimed_airflow.operators import RowsFilterOperator

    operator = RowsFilterOperator(
        task_id="t", table="t.csv", condition="a > 1", engine="kubernetes", execution_timeout=timedelta(minutes=5)
    )
    pod = build_pod(operator)
    assert pod.spec.active_deadline_seconds == 300
    assert pod.spec.security_context.seccomp_profile.type == "RuntimeDefault"
    assert pod.spec.security_context.to_dict()["fs_group"] == pod_security_context()["fsGroup"] == 1000
    for each in pod.spec.containers:
        context = each.security_context
        assert context.seccomp_profile.type == "RuntimeDefault" and context.run_as_non_root is True
        assert context.run_as_user == container_security_context()["runAsUser"] == 1000
    assert pod.spec.containers[0].resources.limits == {"memory": "2Gi"}


def test_bad_secret_entry_is_a_clear_error():
    from claimed_airflow.operators import RowsFilterOperator

    with pytest.raises(ValueError, match=r"^task 't': kubernetes.secrets: .* names an env variable but no key"):
        RowsFilterOperator(
            task_id="t", table="t.csv", condition="a > 1", kubernetes={"secrets": [{"env": "X", "secret": "s"}]}
        )


def test_engine_and_image_come_from_configuration(monkeypatch):
    """No engine argument: Variable ``claimed_engine`` wins over ``[claimed] engine``; images alike."""
    from claimed_airflow.operators import MobileNetV2TrainOperator, RowsFilterOperator
    from claimed_airflow.operators.engines import resolve

    assert resolve(None) == "local"
    monkeypatch.setenv("AIRFLOW__CLAIMED__ENGINE", "spark")
    assert resolve(None) == resolve("default") == "spark"
    monkeypatch.setenv("AIRFLOW_VAR_CLAIMED_ENGINE", "kubernetes")
    assert resolve(None) == "kubernetes" and resolve("local") == "local"

    monkeypatch.setenv("AIRFLOW__CLAIMED__IMAGE", "registry.example.com/claimed:cpu")
    monkeypatch.setenv("AIRFLOW_VAR_CLAIMED_GPU_IMAGE", "registry.example.com/claimed:gpu")
    monkeypatch.setenv("AIRFLOW__CLAIMED__GPU_NODE_SELECTOR", '{"accelerator": "nvidia-h100"}')
    monkeypatch.setenv("AIRFLOW__CLAIMED__KUBERNETES_NAMESPACE", "claimed")
    cpu_pod = build_pod(RowsFilterOperator(task_id="t", table="s3://b/t.csv", condition="a > 1"))
    gpu_pod = build_pod(MobileNetV2TrainOperator(task_id="t", images="s3://b/images"))
    assert cpu_pod.spec.containers[0].image == "registry.example.com/claimed:cpu"
    assert gpu_pod.spec.containers[0].image == "registry.example.com/claimed:gpu"
    assert gpu_pod.spec.node_selector == {"accelerator": "nvidia-h100"} and not cpu_pod.spec.node_selector
    assert cpu_pod.metadata.namespace == gpu_pod.metadata.namespace == "claimed"


def test_templated_engine_and_arguments_are_rendered_before_the_pod_is_built():
    from airflow.sdk import DAG, Param

    from claimed_airflow.operators import MobileNetV2TrainOperator

    with DAG("k8s_dag", schedule=None, start_date=datetime(2026, 1, 1), params={"epochs": Param(9)}) as dag:
        operator = MobileNetV2TrainOperator(
            task_id="task",
            images="s3://b/{{ params.epochs }}/images",
            epochs="{{ params.epochs }}",
            engine="kubernetes",
        )
    context = context_for(SCOPE, dag)
    context["params"] = {"epochs": 12}
    operator.render_template_fields(context)
    pod = build_pod(operator)
    args = pod.spec.containers[0].args
    assert "--epochs=12" in args and "--images=s3://b/12/images" in args


# -- the pod's command, run here ------------------------------------------------------------------


def run_pod_command(pod, xcom_file: Path) -> dict:
    """What the container does: its command and args (the XCom path moved to a temporary file)."""
    container = pod.spec.containers[0]
    argv = [*container.command, *container.args]
    argv[argv.index(XCOM)] = str(xcom_file)
    env = dict(os.environ, **{e.name: e.value for e in container.env if e.value is not None})
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800)  # training: minutes
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(xcom_file.read_text())


def manifest_hashes(result: dict) -> dict:
    record = json.loads(Path(result["manifest"]).read_text())
    return {name: output["hash"] for name, output in record["outputs"].items()}


def test_pod_command_gives_the_same_outputs_as_in_process(tmp_path):
    from claimed_airflow.operators import DicomInputOperator, DicomToImagesTransformOperator, RowsFilterOperator

    table = tmp_path / "t.csv"
    table.write_text("a,b,label\n1,x,p\n3,y,q\n5,z,q\n")
    pod_root, local_root = str(tmp_path / "pod"), str(tmp_path / "local")

    def both(operator, task_id: str) -> tuple[dict, dict]:
        scope = Scope(dag_id="d", run_id="r1", task_id=task_id)
        pod = build_pod(operator, scope, pod_root)
        in_pod = run_pod_command(pod, tmp_path / f"{task_id}.xcom.json")
        spec = registry.get(operator.component)
        in_process = run(spec, operator.component_arguments(), root=local_root, scope=scope)
        assert in_pod == {
            k: v.replace(local_root, pod_root) if isinstance(v, str) else v for k, v in in_process.items()
        }
        assert manifest_hashes(in_pod) == manifest_hashes(in_process)
        assert all(manifest_hashes(in_pod).values())
        return in_pod, in_process

    filtered, _ = both(
        RowsFilterOperator(task_id="filter", table=str(table), condition="a > 2 and label == 'q'"), "filter"
    )
    assert filtered["rows_out"] == 2

    dicom_pod, dicom_local = both(
        DicomInputOperator(task_id="dicom", source=str(SAMPLE / "dicom"), labels=str(SAMPLE / "labels.csv")), "dicom"
    )
    scope = Scope(dag_id="d", run_id="r1", task_id="images")
    images_pod = run_pod_command(
        build_pod(
            DicomToImagesTransformOperator(
                task_id="images", metadata=dicom_pod["metadata"], files=dicom_pod["files"], size=32
            ),
            scope,
            pod_root,
        ),
        tmp_path / "images.xcom.json",
    )
    images_local = run(
        "transform.dicom_to_images",
        {"metadata": dicom_local["metadata"], "files": dicom_local["files"], "size": 32},
        root=local_root,
        scope=scope,
    )
    assert manifest_hashes(images_pod) == manifest_hashes(images_local)
    assert len(list(Path(images_pod["images"]).rglob("*.png"))) == 10


def test_a_caching_task_reuses_outputs_inside_its_pod(tmp_path):
    from claimed_airflow.operators import RowsFilterOperator

    table = tmp_path / "t.csv"
    table.write_text("a,label\n1,p\n3,q\n")
    root = str(tmp_path / "shared")
    results = []
    for run_id, cache in (("r1", True), ("r2", True), ("r3", False)):
        operator = RowsFilterOperator(task_id="filter", table=str(table), condition="a > 2", cache=cache)
        pod = build_pod(operator, Scope(dag_id="d", run_id=run_id, task_id="filter"), root)
        assert ("--cache" in pod.spec.containers[0].args) is cache
        result = run_pod_command(pod, tmp_path / f"{run_id}.xcom.json")
        results.append(json.loads(Path(result["manifest"]).read_text())["cache"])
    first, second, third = results
    assert first["hit"] is False and second["hit"] is True and second["key"] == first["key"]
    assert "/r1/" in second["from"]  # the second pod reused the first pod's outputs
    assert third["hit"] is False  # without --cache the pod computes again


@pytest.mark.e2e
def test_a_dag_switches_to_kubernetes_by_configuration_alone(run_dag, local_kubelet, monkeypatch, tmp_path):
    """The gate DAG (no engine argument in it) runs every task as a pod once ``[claimed] engine`` says so."""
    import pandas as pd

    predictions = tmp_path / "predictions.csv"
    pd.DataFrame({"label": ["a", "a", "b", "b"], "prediction": ["a", "b", "b", "b"]}).to_csv(predictions, index=False)
    monkeypatch.setenv("AIRFLOW__CLAIMED__ENGINE", "kubernetes")
    state, tasks, run_id = run_dag("claimed_test_gate", {"table": str(predictions), "condition": "accuracy > 0.9"})
    assert state == "success"
    assert tasks == {"filter": "success", "metrics": "success", "blessing": "success", "after_gate": "skipped"}
    ran = sorted(p.metadata.labels["task_id"] for p in local_kubelet)
    assert ran == ["blessing", "filter", "metrics"]
    for pod in local_kubelet:
        assert pod.metadata.labels["run_id"] and "--run-id" in pod.spec.containers[0].args
