"""DAG -> KFP plan: what is exported and what is refused (naming the task). Needs Airflow, not kfp."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

pytest.importorskip("airflow")

from airflow.sdk import DAG, Param  # noqa: E402

from claimed_airflow.kfp.plan import Concat, Const, ExportError, OutputRef, ParamRef, plan_dag  # noqa: E402
from claimed_airflow.operators import (  # noqa: E402
    ConditionBlessingDeployOperator,
    ConfusionMatrixMetricOperator,
    LocalDeployOperator,
    RowsFilterOperator,
)


def _dag(**params) -> DAG:
    return DAG(
        dag_id="kfp_plan_test",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        params=params or {"table": Param("t.csv", type="string"), "threshold": Param(0.5, type="number")},
    )


def test_arguments_dependencies_and_gates():
    with _dag() as dag:
        kept = RowsFilterOperator(task_id="filter", table="{{ params.table }}", condition="label == 'a'", retries=2)
        metrics = ConfusionMatrixMetricOperator(task_id="metrics", predictions=kept.output["output"])
        gate = ConditionBlessingDeployOperator(
            task_id="gate", metrics=metrics.output["metrics"], condition="accuracy >= {{ params.threshold }}"
        )
        deploy = LocalDeployOperator(task_id="deploy", model=kept.output["output"])
        gate >> deploy
    plan = plan_dag(dag)
    assert [s.task_id for s in plan.steps] == ["filter", "metrics", "gate", "deploy"]
    assert [(p.name, p.type, p.default) for p in plan.params] == [
        ("table", "str", "t.csv"),
        ("threshold", "float", 0.5),
    ]
    steps = {s.task_id: s for s in plan.steps}
    assert steps["filter"].arguments == {"table": ParamRef("table"), "condition": Const("label == 'a'")}
    assert steps["filter"].retries == 2 and steps["filter"].retry_delay_s == 300
    assert steps["metrics"].arguments["predictions"] == OutputRef("filter", "output")
    assert steps["gate"].arguments["condition"] == Concat(("accuracy >= ", ParamRef("threshold")))
    assert steps["gate"].gate and steps["gate"].gates == ()
    assert steps["deploy"].upstream == {"gate", "filter"} and steps["deploy"].gates == ("gate",)


def test_a_python_operator_is_refused_naming_the_task():
    from airflow.providers.standard.operators.python import PythonOperator

    with _dag() as dag:
        kept = RowsFilterOperator(task_id="filter", table="{{ params.table }}", condition="x > 1")
        notify = PythonOperator(task_id="notify_team", python_callable=print)
        kept >> notify
    with pytest.raises(ExportError, match=r"task 'notify_team': is a PythonOperator, not a claimed operator.*--skip"):
        plan_dag(dag)
    plan = plan_dag(dag, skip=["notify_team"])  # the documented way to leave it out
    assert [s.task_id for s in plan.steps] == ["filter"]


def test_skipped_tasks_are_bridged_and_their_outputs_cannot_be_used():
    from airflow.providers.standard.operators.empty import EmptyOperator

    with _dag() as dag:
        first = RowsFilterOperator(task_id="first", table="{{ params.table }}", condition="x > 1")
        join = EmptyOperator(task_id="join")
        second = RowsFilterOperator(task_id="second", table="{{ params.table }}", condition="x > 2")
        first >> join >> second
    assert plan_dag(dag, skip=["join"]).step("second").upstream == {"first"}
    with pytest.raises(ExportError, match=r"task 'second': uses an output of 'first', which is skipped"):
        with _dag() as dag2:
            first = RowsFilterOperator(task_id="first", table="{{ params.table }}", condition="x > 1")
            RowsFilterOperator(task_id="second", table=first.output["output"], condition="x > 2")
        plan_dag(dag2, skip=["first"])
    with pytest.raises(ExportError, match=r"skip: no task 'nope'"):
        plan_dag(dag, skip=["nope"])


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: __import__("airflow.providers.standard.sensors.python", fromlist=["x"]).PythonSensor(
                task_id="wait", python_callable=bool
            ),
            r"task 'wait': is a sensor \(PythonSensor\)",
        ),
        (
            lambda: __import__("airflow.providers.standard.operators.python", fromlist=["x"]).BranchPythonOperator(
                task_id="branch", python_callable=lambda: "x"
            ),
            r"task 'branch': is a branching/skipping operator \(BranchPythonOperator\)",
        ),
        (
            lambda: RowsFilterOperator.partial(task_id="mapped", condition="x > 1").expand(table=["a", "b"]),
            r"task 'mapped': dynamic task mapping",
        ),
        (
            lambda: RowsFilterOperator(task_id="dated", table="data/{{ ds }}.csv", condition="x > 1"),
            r"task 'dated': table: template '\{\{ ds \}\}' uses Airflow-only context",
        ),
        (
            lambda: RowsFilterOperator(task_id="filtered", table="{{ params.table | upper }}", condition="x > 1"),
            r"task 'filtered': table: template .* uses Airflow-only context",
        ),
        (
            lambda: RowsFilterOperator(task_id="loop", table="{% if true %}a{% endif %}", condition="x > 1"),
            r"task 'loop': table: Jinja statements or comments",
        ),
        (
            lambda: RowsFilterOperator(task_id="unknown", table="{{ params.missing }}", condition="x > 1"),
            r"task 'unknown': table: .*'missing', which is not a DAG param",
        ),
        (
            lambda: RowsFilterOperator(
                task_id="rule", table="{{ params.table }}", condition="x > 1", trigger_rule="all_done"
            ),
            r"task 'rule': trigger rule 'all_done'",
        ),
    ],
    ids=["sensor", "branch", "mapping", "ds", "filter", "statement", "unknown-param", "trigger-rule"],
)
def test_airflow_only_features_are_refused(make, message):
    with _dag() as dag:
        make()
    with pytest.raises(ExportError, match=message):
        plan_dag(dag)


def test_xcom_references_must_be_output_artifacts():
    with _dag() as dag:
        kept = RowsFilterOperator(task_id="filter", table="{{ params.table }}", condition="x > 1")
        RowsFilterOperator(task_id="uses_value", table=kept.output["rows_out"], condition="x > 1")
    with pytest.raises(ExportError, match=r"task 'uses_value': table: filter.output\['rows_out'\] is a returned value"):
        plan_dag(dag)
    with _dag() as dag:
        kept = RowsFilterOperator(task_id="filter", table="{{ params.table }}", condition="x > 1")
        RowsFilterOperator(task_id="whole", table=kept.output, condition="x > 1")
    with pytest.raises(ExportError, match=r"task 'whole': table: uses the whole XCom of 'filter'"):
        plan_dag(dag)


def test_param_types_must_match_the_component_parameter():
    from claimed_airflow.operators import DicomToImagesTransformOperator

    with _dag(size=Param("64", type="string")) as dag:
        DicomToImagesTransformOperator(task_id="images", metadata="m.parquet", files="f", size="{{ params.size }}")
    with pytest.raises(ExportError, match=r"task 'images': size: is int but DAG param 'size' is str"):
        plan_dag(dag)
    with _dag(size=Param(64, type="integer")) as dag:
        DicomToImagesTransformOperator(task_id="images", metadata="m.parquet", files="f", size="{{ params.size }}")
    assert plan_dag(dag).steps[0].arguments["size"] == ParamRef("size")
    with _dag() as dag:  # constants are checked with the component's own coercion
        DicomToImagesTransformOperator(task_id="images", metadata="m.parquet", files="f", size="big")
    with pytest.raises(ExportError, match=r"task 'images': size: size: expected an integer, got 'big'"):
        plan_dag(dag)


def test_gates_must_nest():
    with _dag() as dag:
        a = ConditionBlessingDeployOperator(task_id="gate_a", metrics="a.json")
        b = ConditionBlessingDeployOperator(task_id="gate_b", metrics="b.json")
        after = RowsFilterOperator(task_id="after", table="{{ params.table }}", condition="x > 1")
        [a, b] >> after
    with pytest.raises(ExportError, match=r"task 'after': runs after two independent gates 'gate_a' and 'gate_b'"):
        plan_dag(dag)
    with _dag() as dag:
        a = ConditionBlessingDeployOperator(task_id="gate_a", metrics="a.json")
        b = ConditionBlessingDeployOperator(task_id="gate_b", metrics="b.json")
        after = RowsFilterOperator(
            task_id="after", table="{{ params.table }}", condition="x > 1", retry_delay=timedelta(1)
        )
        a >> b >> after
    assert plan_dag(dag).step("after").gates == ("gate_a", "gate_b")


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"kubernetes": {"namespace": "ml"}},
            "task 'filter': namespace: a KFP step runs in the namespace of its pipeline run",
        ),
        (
            {"kubernetes": {"secrets": [{"secret": "wandb"}]}},
            "task 'filter': secrets: {'secret': 'wandb'} (every key as environment)",
        ),
        (
            {"kubernetes": {"secrets": [{"secret": "c", "mount": "/c", "key": "k"}]}},
            "task 'filter': secrets: mounting only key 'k'",
        ),
        ({"kubernetes": {"pod_options": {"service_account_name": "x"}}}, "task 'filter': pod_options: "),
        ({"spark": {"conf": {"spark.executor.memory": "4g"}}}, "task 'filter': spark_conf: "),
    ],
)
def test_pod_options_kfp_cannot_express_are_refused(options, message):
    with _dag() as dag:
        RowsFilterOperator(task_id="filter", table="t.csv", condition="a > 1", **options)
    with pytest.raises(ExportError) as caught:
        plan_dag(dag)
    assert str(caught.value).startswith(message)


def test_pod_and_cache_are_planned_with_the_settings_of_export_time(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_CLAIMED_GPU_IMAGE", "mirror.local/claimed:gpu")
    monkeypatch.setenv("AIRFLOW__CLAIMED__CACHE", "true")
    with _dag(cache=Param(False, type="boolean"), n=Param(1, type="integer")) as dag:
        RowsFilterOperator(task_id="filter", table="t.csv", condition="a > 1", cache="{{ params.cache }}")
        RowsFilterOperator(
            task_id="configured", table="t.csv", condition="a > 1", kubernetes={"gpus": 1, "env_vars": {"A": 1}}
        )
        RowsFilterOperator(task_id="off", table="t.csv", condition="a > 1", cache=False)
    plan = plan_dag(dag)
    assert plan.step("filter").cache == ParamRef("cache")
    assert plan.step("configured").cache == Const(True) and plan.step("off").cache == Const(False)
    configured = plan.step("configured").pod
    assert configured.image == "mirror.local/claimed:gpu" and configured.gpus == 1
    assert configured.env == {"CLAIMED_IMAGE": "mirror.local/claimed:gpu", "A": "1"}
    assert configured.resources["limits"] == {"memory": "2Gi", "nvidia.com/gpu": "1"}
    with _dag(n=Param(1, type="integer")) as dag:
        RowsFilterOperator(task_id="filter", table="t.csv", condition="a > 1", cache="{{ params.n }}")
    with pytest.raises(ExportError, match="task 'filter': cache: DAG param 'n' is int; give it type boolean"):
        plan_dag(dag)
