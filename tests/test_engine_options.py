"""Engine options: typed per engine (core.options), apart from the component's parameters; the flat keyword
arguments of earlier releases folded in; engines run from an EngineTask, never the operator."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from claimed_airflow.core import registry
from claimed_airflow.core.component import component, derive_spec
from claimed_airflow.core.errors import ClaimedError, ParameterError
from claimed_airflow.core.options import KubernetesOptions, SparkOptions
from claimed_airflow.core.storage import Scope
from tests.test_kubernetes_engine import SCOPE, build_pod, context_for

pytest.importorskip("airflow.providers.cncf.kubernetes", reason="needs the kubernetes extra")

FLAT = {
    "image": "registry.example.com/claimed:7",
    "namespace": "ml",
    "cpu": "3",
    "memory": "5Gi",
    "gpus": 1,
    "node_selector": {"pool": "gpu"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "etl", "effect": "NoSchedule"}],
    "image_pull_secrets": ["regcred"],
    "secrets": [{"env": "AWS_SECRET_ACCESS_KEY", "secret": "s3", "key": "secret_key"}],
    "env_vars": {"N": 3},
    "pod_options": {"service_account_name": "runner"},
}


def rows(**options):
    from claimed_airflow.operators import RowsFilterOperator

    return RowsFilterOperator(task_id="t", table="s3://b/t.csv", condition="a > 1", engine="kubernetes", **options)


def pod_of(operator):
    from kubernetes.client import ApiClient

    pod = ApiClient().sanitize_for_serialization(build_pod(operator))
    del pod["metadata"]["name"]  # random suffix
    return pod


def test_the_options_object_and_the_flat_arguments_give_the_same_pod():
    flat, typed, as_dict = rows(**FLAT), rows(kubernetes=KubernetesOptions(**FLAT)), rows(kubernetes=FLAT)
    assert flat.kubernetes == typed.kubernetes == as_dict.kubernetes
    assert rows(kubernetes_conn_id="cluster").kubernetes == rows(kubernetes={"conn_id": "cluster"}).kubernetes
    assert pod_of(flat) == pod_of(typed) == pod_of(as_dict)
    pod = pod_of(typed)
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/claimed:7" and pod["metadata"]["namespace"] == "ml"
    assert container["resources"]["requests"] == {"cpu": "3", "memory": "5Gi"}
    assert container["resources"]["limits"] == {"memory": "5Gi", "nvidia.com/gpu": "1"}
    assert pod["spec"]["serviceAccountName"] == "runner" and pod["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert {"name": "N", "value": "3"} in container["env"]
    spark = rows(spark_conn_id="spark_yarn", spark_conf={"spark.executor.cores": 2})
    assert spark.spark == SparkOptions(conn_id="spark_yarn", conf={"spark.executor.cores": 2})
    assert rows(spark={"conn_id": "spark_yarn", "conf": {"spark.executor.cores": 2}}).spark == spark.spark


def test_an_option_given_flat_and_in_the_object_is_an_error():
    with pytest.raises(ParameterError, match=r"^task 't': cpu: given both as cpu=\.\.\. and in kubernetes=\{'cpu'"):
        rows(cpu="2", kubernetes={"cpu": "2"})
    with pytest.raises(ParameterError, match=r"^task 't': spark_conf: given both as spark_conf=\.\.\. and in spark="):
        rows(spark_conf={"spark.a": 1}, spark=SparkOptions(conf={"spark.b": 2}))
    rows(cpu="2", kubernetes={"memory": "4Gi"})  # different options: both kept


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cpu": "two"}, "kubernetes.cpu: expected a Kubernetes quantity such as '2', got 'two'"),
        ({"gpus": -1}, "kubernetes.gpus: expected a whole number of GPUs (0 or more), got -1"),
        ({"image_pull_secrets": "regcred"}, "kubernetes.image_pull_secrets: expected a list of names, got 'regcred'"),
        ({"tolerations": [{"key": "a", "operater": "Exists"}]}, "kubernetes.tolerations: {'key': 'a', 'operater'"),
        ({"kubernetes": {"cpus": "2"}}, "kubernetes: unknown option(s) cpus; expected: image, namespace, cpu,"),
        ({"kubernetes": "big"}, "kubernetes: expected KubernetesOptions(...) or a dict, got 'big'"),
        ({"spark_conf": {"executor.cores": 2}}, "spark.conf: 'executor.cores' is not a Spark setting (spark.*)"),
        ({"kubernetes_conn_id": ""}, "kubernetes.conn_id: expected a non-empty string, got ''"),
    ],
)
def test_options_are_checked_when_the_dag_is_parsed(options, message):
    with pytest.raises(ParameterError) as caught:
        rows(**options)
    assert str(caught.value).startswith(f"task 't': {message}") and "\n" not in str(caught.value)


def test_dag_wide_options_from_default_args_are_overridden_option_by_option():
    from airflow.sdk import DAG

    from claimed_airflow.operators import RowsFilterOperator

    default_args = {"cpu": "5", "kubernetes_conn_id": "cluster", "kubernetes": {"memory": "1Gi", "namespace": "ml"}}
    with DAG("options", default_args=default_args, schedule=None, start_date=datetime(2026, 1, 1)):
        own = RowsFilterOperator(task_id="own", table="t", condition="a", kubernetes={"cpu": "3"}, memory="2Gi")
        inherited = RowsFilterOperator(task_id="inherited", table="t", condition="a")
    assert (own.kubernetes.cpu, own.kubernetes.memory, own.kubernetes.namespace) == ("3", "2Gi", "ml")
    assert (inherited.kubernetes.cpu, inherited.kubernetes.memory, inherited.kubernetes.conn_id) == (
        "5",
        "1Gi",
        "cluster",
    )


def test_a_component_parameter_named_like_an_engine_option_is_the_components():
    """KServe's predictor resources are cpu/memory/gpus/image/namespace; the pod of the task itself is
    given through kubernetes=..., and the flat names go to the component."""
    from claimed_airflow.operators import KServeDeployOperator

    operator = KServeDeployOperator(
        task_id="kserve",
        storage_uri="s3://b/m",
        service_name="xray",
        cpu="4",
        gpus=1,
        image="registry.example.com/serve",
        namespace="models",
        engine="kubernetes",
        kubernetes={"cpu": "250m", "namespace": "airflow"},
    )
    assert (operator.cpu, operator.gpus, operator.namespace) == ("4", 1, "models")
    pod = pod_of(operator)
    container = pod["spec"]["containers"][0]
    resources = container["resources"]
    assert resources["requests"]["cpu"] == "250m" and "nvidia.com/gpu" not in resources["limits"]
    assert pod["metadata"]["namespace"] == "airflow"
    assert container["image"].startswith("ghcr.io/claimed-framework/claimed-airflow:")  # not the predictor's
    args = container["args"]
    assert {"--cpu=4", "--gpus=1", "--namespace=models", "--image=registry.example.com/serve"} <= set(args)


def test_former_tfjob_image_name_still_works_with_a_deprecation_warning():
    spec = registry.get("train.tfjob")
    given = {"trainer": "train.mobilenet_v2", "job_root": "s3://b/jobs"}
    with pytest.warns(DeprecationWarning, match=r"^train.tfjob: parameter job_image is now image; "):
        assert spec.bind({**given, "job_image": "registry.example.com/t:1"})["image"] == "registry.example.com/t:1"


def test_renamed_must_name_a_current_parameter_and_no_former_one():
    def scale(table: str, factor: float = 1.0) -> dict:
        return {}

    with pytest.raises(TypeError, match=r"^transform.scale: renamed 'ratio' -> 'scale_factor' needs a parameter"):
        derive_spec(scale, category="transform", renamed={"ratio": "scale_factor"})
    with pytest.raises(TypeError, match="and none 'table'"):
        component("transform", renamed={"table": "factor"})(scale)


def test_engines_run_from_an_engine_task_without_an_operator(tmp_path):
    """No ClaimedOperator, no Airflow context: the local engine runs the component, the kubernetes engine
    builds its pod, the spark engine its spark-submit, all from the EngineTask alone."""
    from claimed_airflow.operators.engines import EngineTask, kubernetes, local, spark

    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,x\n5,y\n")
    spec = registry.get("filter.rows")
    task = EngineTask(
        task_id="rows",
        spec=spec,
        arguments={"table": str(table), "condition": "a > 2"},
        root=str(tmp_path / "out"),
        scope=Scope("d", "r", "rows"),
        kubernetes=KubernetesOptions(cpu="2", pod_options={"service_account_name": "runner"}),
        spark=SparkOptions(conf={"spark.executor.cores": 2}),
        retries=2,
        timeout=timedelta(minutes=3),
    )
    assert local.execute(task, {})["rows_out"] == 1
    local.kill(task)  # nothing left to end
    pod_operator = kubernetes.pod_operator(task, context_for(SCOPE))
    pod = pod_operator.build_pod_request_obj(context_for(SCOPE), dry_run=True)
    assert pod.spec.containers[0].resources.requests == {"cpu": "2", "memory": "2Gi"}
    assert pod.spec.active_deadline_seconds == 180 and pod.spec.service_account_name == "runner"
    assert "--condition=a > 2" in pod.spec.containers[0].args
    pytest.importorskip("airflow.providers.apache.spark")
    submit = spark.submit_operator(task, {})
    assert submit.application_args[0] == "filter.rows" and submit.conf["spark.executor.cores"] == 2
    kubernetes.kill(task)  # nothing started
    with pytest.raises(ClaimedError, match="unknown parameter"):
        local.execute(EngineTask("bad", spec, {"nope": 1}, str(tmp_path), Scope("d", "r", "bad")), {})
