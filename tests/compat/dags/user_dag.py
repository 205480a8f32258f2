"""A user's DAG: claimed operators beside TaskFlow tasks and a PythonOperator, XCom passed both ways.

The same file runs on Airflow 2.11, 3.0 and 3.3: Airflow names come from apache-airflow-providers-common-compat.
The last tasks write what they received to ``<workdir>/received.json`` for the test to check.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, Param, task
from airflow.providers.common.compat.standard.operators import PythonOperator

from claimed_airflow.assets import model_asset
from claimed_airflow.operators import (
    ConditionBlessingDeployOperator,
    ConfusionMatrixMetricOperator,
    LocalDeployOperator,
    RowsFilterOperator,
)


def summarize(workdir: str, kept: str, accuracy: float, manifest: str, threshold: str) -> dict:
    """PythonOperator: a claimed output (XComArg), a TaskFlow value and two templates."""
    received = {"kept": kept, "accuracy": accuracy, "manifest": manifest, "threshold": threshold}
    (Path(workdir) / "received.json").write_text(json.dumps(received))
    return received


with DAG(
    dag_id="compat_user_dag",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "workdir": Param("/tmp", type="string"),
        "condition": Param("accuracy >= 0.5", type="string"),
        "min_accuracy": Param(0.5, type="number"),
    },
) as dag:

    @task
    def predictions(workdir: str) -> str:
        path = Path(workdir) / "predictions.csv"
        path.write_text("label,prediction\na,a\na,b\nb,b\nb,b\n")
        return str(path)

    @task
    def model_folder(workdir: str) -> str:
        folder = Path(workdir) / "model"
        folder.mkdir(exist_ok=True)
        (folder / "weights.bin").write_bytes(b"weights")
        return str(folder)

    @task
    def accuracy(metrics_uri: str) -> float:
        return json.loads(Path(metrics_uri).read_text())["accuracy"]

    table = predictions("{{ params.workdir }}")  # TaskFlow value into claimed operators
    kept = RowsFilterOperator(task_id="kept", table=table, condition="label == prediction")
    metrics = ConfusionMatrixMetricOperator(task_id="metrics", predictions=table)
    PythonOperator(
        task_id="summary",
        python_callable=summarize,
        op_args=[
            "{{ params.workdir }}",
            kept.output["output"],  # a claimed output into a PythonOperator
            accuracy(metrics.output["metrics"]),  # and into a TaskFlow task
            "{{ ti.xcom_pull(task_ids='metrics', key='manifest') }}",
            "{{ params.min_accuracy }}",
        ],
    )
    blessing = ConditionBlessingDeployOperator(
        task_id="blessing", metrics=metrics.output["metrics"], condition="{{ params.condition }}"
    )
    deploy = LocalDeployOperator(
        task_id="deploy",
        model=model_folder("{{ params.workdir }}"),
        model_name="compat_user_model",
        models_root="{{ params.workdir }}/models",
        outlets=[model_asset("compat_user_model")],
    )
    blessing >> deploy
