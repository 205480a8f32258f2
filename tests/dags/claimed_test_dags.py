"""Small DAGs used by the tests: the blessing gate and DICOM input with bad files."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from claimed_airflow.assets import model_asset
from claimed_airflow.operators import (
    ApplyTransformOperator,
    ClaimedOperator,
    ConditionBlessingDeployOperator,
    DicomInputOperator,
    LocalDeployOperator,
    RowsFilterOperator,
)

with DAG(
    dag_id="claimed_test_gate",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={"table": Param("", type="string"), "condition": Param("accuracy > 0.5", type="string")},
) as gate_dag:
    kept = RowsFilterOperator(task_id="filter", table="{{ params.table }}", condition="label == prediction")
    metrics = ClaimedOperator(
        task_id="metrics",
        component="metric.confusion_matrix",
        arguments={"predictions": "{{ params.table }}"},
    )
    blessing = ConditionBlessingDeployOperator(
        task_id="blessing", metrics=metrics.output["metrics"], condition="{{ params.condition }}"
    )
    after = RowsFilterOperator(task_id="after_gate", table=kept.output["output"], condition="label == 'a'")
    blessing >> after

with DAG(
    dag_id="claimed_test_dicom_input",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={"source": Param("", type="string")},
) as dicom_dag:
    DicomInputOperator(task_id="dicom_input", source="{{ params.source }}")

with DAG(
    dag_id="claimed_test_cache",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    default_args={"cache": True},
    params={"table": Param("", type="string"), "condition": Param("label == prediction", type="string")},
) as cache_dag:
    kept = RowsFilterOperator(task_id="kept", table="{{ params.table }}", condition="{{ params.condition }}")
    scored = ApplyTransformOperator(
        task_id="scored", table=kept.output["output"], column="ok", expression="label == prediction"
    )
    ClaimedOperator(
        task_id="metrics", component="metric.confusion_matrix", arguments={"predictions": scored.output["output"]}
    )
    RowsFilterOperator(task_id="only_a", table="{{ params.table }}", condition="label == 'a'")


with DAG(
    dag_id="claimed_test_deploy_asset",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={"model": Param("", type="string")},
) as deploy_dag:
    LocalDeployOperator(
        task_id="deploy", model="{{ params.model }}", model_name="asset_test", outlets=[model_asset("asset_test")]
    )

with DAG(dag_id="claimed_test_on_model", schedule=[model_asset("asset_test")], start_date=datetime(2026, 1, 1)):
    RowsFilterOperator(task_id="noop", table="{{ dag_run.conf.get('table', '') }}", condition="True")
