"""Test DAGs: deploy to Watson ML and e-mail the outcome; deploy to KServe (loopback stubs in the tests)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from claimed_airflow.operators import KServeDeployOperator, NotificationEmailMonitoringOperator, WatsonMLDeployOperator

with DAG(
    dag_id="claimed_test_deploy",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={
        "model": Param("", type="string"),
        "metrics": Param("", type="string"),
        "wml_conn": Param("wml_stub", type="string"),
        "smtp_conn": Param("smtp_test", type="string"),
    },
) as deploy_dag:
    watson = WatsonMLDeployOperator(
        task_id="watson_ml",
        model="{{ params.model }}",
        deployment_name="xray",
        conn_id="{{ params.wml_conn }}",
        poll_interval=0.01,
    )
    NotificationEmailMonitoringOperator(
        task_id="notify",
        metrics="{{ params.metrics }}",
        to=["ops@example.com"],
        conn_id="{{ params.smtp_conn }}",
        blessed=True,
        deployment_url=watson.output["deployment_url"],
        title="{{ dag.dag_id }} {{ run_id }}",
    )

with DAG(
    dag_id="claimed_test_kserve",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={
        "storage_uri": Param("s3://bucket/models/xray/1", type="string"),
        "ready_timeout": Param(1, type="integer"),
    },
) as kserve_dag:
    KServeDeployOperator(
        task_id="kserve",
        storage_uri="{{ params.storage_uri }}",
        service_name="xray",
        gpus=1,
        conn_id="k8s_stub",
        ready_timeout="{{ params.ready_timeout }}",
        poll_interval=0.2,
    )
