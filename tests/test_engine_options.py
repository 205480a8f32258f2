"""Engine options: typed per engine (core.options), given only as ``kubernetes=``/``spark=``, apart from the
component's parameters; engines run from an EngineTask, never the operator."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from claimed_airflow.core import registry
from claimed_airflow.core.errors import ClaimedError, ParameterError
from claimed_airflow.core.options import KubernetesOptions, SparkOptions
from claimed_airflow.core.storage import Scope
from tests.test_kubernetes_engine import SCOPE, build_pod, context_for

pytest.importorskip("airflow.providers.cncf.kubernetes", reason="needs the kubernetes extra")

OPTIONS = {
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


def test_the_options_object_and_a_dict_give_the_same_pod():
    typed, as_dict = rows(kubernetes=KubernetesOptions(**OPTIONS)), rows(kubernetes=OPTIONS)
    assert typed.engine_options() == as_dict.engine_options()
    assert pod_of(typed) == pod_of(as_dict)
    pod = pod_of(typed)
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/claimed:7" and pod["metadata"]["namespace"] == "ml"
    assert container["resources"]["requests"] == {"cpu": "3", "memory": "5Gi"}
    assert container["resources"]["limits"] == {"memory": "5Gi", "nvidia.com/gpu": "1"}
    assert pod["spec"]["serviceAccountName"] == "runner" and pod["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert {"name": "N", "value": "3"} in container["env"]
    spark = rows(spark={"conn_id": "spark_yarn", "conf": {"spark.executor.cores": 2}})
    assert spark.engine_options()[1] == SparkOptions(conn_id="spark_yarn", conf={"spark.executor.cores": 2})


@pytest.mark.parametrize("flat", [{"cpu": "2"}, {"kubernetes_conn_id": "cluster"}, {"spark_conf": {"spark.a": 1}}])
def test_an_engine_option_outside_its_object_is_refused(flat):
    """The flat keyword arguments (``cpu=`` meaning the pod's) are gone: Airflow refuses an unknown argument."""
    with pytest.raises(TypeError, match=f"(?s)Invalid arguments were passed to RowsFilterOperator.*{next(iter(flat))}"):
        rows(**flat)


@pytest.mark.parametrize(
    ("kubernetes", "message"),
    [
        ({"cpu": "two"}, "kubernetes.cpu: expected a Kubernetes quantity such as '2', got 'two'"),
        ({"gpus": -1}, "kubernetes.gpus: expected a whole number of GPUs (0 or more), got -1"),
        ({"image_pull_secrets": "regcred"}, "kubernetes.image_pull_secrets: expected a list of names, got 'regcred'"),
        ({"tolerations": [{"key": "a", "operater": "Exists"}]}, "kubernetes.tolerations: {'key': 'a', 'operater'"),
        ({"conn_id": ""}, "kubernetes.conn_id: expected a non-empty string, got ''"),
        ({"cpus": "2"}, "kubernetes: unknown option(s) cpus; expected: image, namespace, cpu,"),
        ("big", "kubernetes: expected KubernetesOptions(...) or a dict, got 'big'"),
    ],
)
def test_options_are_checked_when_the_dag_is_parsed(kubernetes, message):
    with pytest.raises(ParameterError, match=r"^task 't': spark.conf: 'executor.cores' is not a Spark setting"):
        rows(spark={"conf": {"executor.cores": 2}})
    with pytest.raises(ParameterError) as caught:
        rows(kubernetes=kubernetes)
    assert str(caught.value).startswith(f"task 't': {message}") and "\n" not in str(caught.value)


def test_dag_wide_options_from_default_args_are_overridden_option_by_option():
    from airflow.sdk import DAG

    from claimed_airflow.operators import RowsFilterOperator

    default_args = {"kubernetes": {"cpu": "5", "conn_id": "cluster", "memory": "1Gi", "namespace": "ml"}}
    with DAG("options", default_args=default_args, schedule=None, start_date=datetime(2026, 1, 1)):
        own = RowsFilterOperator(task_id="own", table="t", condition="a", kubernetes={"cpu": "3", "memory": "2Gi"})
        inherited = RowsFilterOperator(task_id="inherited", table="t", condition="a")
    (mine, _), (theirs, _) = own.engine_options(), inherited.engine_options()
    assert (mine.cpu, mine.memory, mine.namespace, mine.conn_id) == ("3", "2Gi", "ml", "cluster")
    assert (theirs.cpu, theirs.memory, theirs.conn_id) == ("5", "1Gi", "cluster")


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


def test_former_parameter_names_are_unknown_parameters():
    """The names before the natural ones (``job_image``, ``predictor_cpu``, ...) were never released: no shim."""
    tfjob = {"trainer": "train.mobilenet_v2", "job_root": "s3://b/jobs", "job_image": "registry.example.com/t:1"}
    with pytest.raises(ParameterError, match=r"^train.tfjob: unknown parameter\(s\) job_image; expected: "):
        registry.get("train.tfjob").bind(tfjob)
    kserve = {"storage_uri": "s3://b/m", "service_name": "xray", "predictor_cpu": "2"}
    with pytest.raises(ParameterError, match=r"^deploy.kserve: unknown parameter\(s\) predictor_cpu; "):
        registry.get("deploy.kserve").bind(kserve)


def test_engines_run_from_an_engine_task_without_an_operator(tmp_path):
    """No ClaimedOperator, no Airflow context: the local engine runs the component, the kubernetes engine
    builds its pod, the spark engine its spark-submit, all from the EngineTask alone."""
    from claimed_airflow.operators.engines import ENGINES, EngineTask, kubernetes, spark

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
    local = ENGINES["local"]()
    assert local.run(task, {})["rows_out"] == 1
    local.kill(task)  # nothing left to end
    pod_operator = kubernetes.pod_operator(task, context_for(SCOPE))
    pod = pod_operator.build_pod_request_obj(context_for(SCOPE), dry_run=True)
    assert pod.spec.containers[0].resources.requests == {"cpu": "2", "memory": "2Gi"}
    assert pod.spec.active_deadline_seconds == 180 and pod.spec.service_account_name == "runner"
    assert "--condition=a > 2" in pod.spec.containers[0].args
    pytest.importorskip("airflow.providers.apache.spark")
    submit = spark.submission(task)
    assert submit["application_args"][0] == "filter.rows" and submit["conf"]["spark.executor.cores"] == 2
    ENGINES["kubernetes"]().kill(task)  # nothing started
    with pytest.raises(ClaimedError, match="unknown parameter"):
        local.run(EngineTask("bad", spec, {"nope": 1}, str(tmp_path), Scope("d", "r", "bad")), {})


def test_engine_options_are_templates_rendered_when_the_task_runs(monkeypatch):
    """``kubernetes=``/``spark=`` (and the DAG's default_args of them) are template fields: rendered by Airflow
    when the task runs, folded option by option, then checked; a rendered value that is no option's fails the
    task naming it."""
    from airflow.sdk import DAG, Param
    from airflow.sdk.exceptions import AirflowFailException
    from airflow.sdk.execution_time.context import VariableAccessor

    from claimed_airflow.operators import RowsFilterOperator

    monkeypatch.setenv("AIRFLOW_VAR_CLAIMED_TEST_IMAGE", "registry.example.com/claimed:9")
    default_args = {
        "kubernetes": {"namespace": "{{ params.namespace }}", "cpu": "3", "memory": "1Gi"},
        "spark": {"conf": {"spark.executor.memory": "{{ params.memory }}"}},
    }
    params = {"namespace": Param("ml"), "memory": Param("2g"), "cpu": Param("2")}
    with DAG("templated", default_args=default_args, params=params, schedule=None, start_date=datetime(2026, 1, 1)):
        task = RowsFilterOperator(
            task_id="task",
            table="s3://b/t.csv",
            condition="a > 1",
            engine="kubernetes",
            kubernetes={"image": "{{ var.value.claimed_test_image }}", "memory": "{{ params.memory | upper }}i"},
        )
        bad = RowsFilterOperator(
            task_id="bad",
            table="s3://b/t.csv",
            condition="a > 1",
            engine="kubernetes",
            kubernetes={"cpu": "{{ 2 * 2 }} cores"},
        )
    assert "kubernetes" in task.template_fields and "spark" in task.template_fields
    context = {
        **context_for(SCOPE),
        "params": {"namespace": "ml", "memory": "2g", "cpu": "2"},
        "var": {"value": VariableAccessor(deserialize_json=False), "json": VariableAccessor(deserialize_json=True)},
        "outlet_events": {},
    }
    task.render_template_fields(context)
    pod = build_pod(task)
    container = pod.spec.containers[0]
    assert container.image == "registry.example.com/claimed:9" and pod.metadata.namespace == "ml"
    assert container.resources.requests == {"cpu": "3", "memory": "2Gi"}  # the task's memory, the DAG's cpu
    assert task.engine_options()[1].conf == {"spark.executor.memory": "2g"}
    bad.render_template_fields(context)
    with pytest.raises(AirflowFailException) as caught:
        bad.execute(context)
    assert str(caught.value) == (
        "filter.rows: task 'bad': kubernetes.cpu: expected a Kubernetes quantity such as '2', got '4 cores'"
    )
