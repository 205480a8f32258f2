"""Test DAG: a claimed operator whose wait runs in the triggerer (deferrable=True); the scheduled-run test
points its Kubernetes connection at a loopback stub of the API."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from claimed_airflow.operators import KServeDeployOperator

with DAG(
    dag_id="claimed_test_deferrable",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={"conn_id": Param("k8s_e2e", type="string"), "ready_timeout": Param(120, type="integer")},
) as dag:
    KServeDeployOperator(
        task_id="kserve",
        storage_uri="s3://bucket/models/xray/3",
        service_name="xray",
        conn_id="{{ params.conn_id }}",
        ready_timeout="{{ params.ready_timeout }}",
        poll_interval=1.0,
        deferrable=True,
    )
