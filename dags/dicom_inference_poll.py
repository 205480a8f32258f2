"""PACS pull on any Airflow (2.11 and later): start ``dicom_inference`` once for every new stable study of a PACS.

Without event-driven scheduling (Airflow 2.11 has no AssetWatcher; ``dicom_inference_watch`` needs 3.0):
a run every 5 minutes, one at a time. Its first task, ``new_studies``
(:class:`~claimed_airflow.triggers.studies.NewStudiesSensor`), waits deferred in the triggerer, without a
worker slot, until the PACS of connection ``$CLAIMED_WATCH_CONN_ID`` (default ``dicomweb_default``) has new
stable studies (Orthanc's change feed, else a QIDO-RS poll, every ``$CLAIMED_WATCH_INTERVAL`` seconds,
default 10); ``start_inference`` starts one ``dicom_inference`` run per study with the run id
``study__<hash of the study UID>`` (skipped when Airflow has it); ``save_cursor`` then stores the feed's
cursor in the Variable ``claimed_study_feed__<conn id>``. A run that fails before that announces the same
studies again next time, and their run ids start each once. ``$CLAIMED_WATCH_SINCE``: where a first start
(no Variable yet) begins (Orthanc: a change number, 0: every study it holds; unset: from now on).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from claimed_airflow.triggers.studies import STATE_KEY, NewStudiesSensor

try:
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
except ImportError:  # Airflow 2.11 without the standard provider
    from airflow.operators.python import PythonOperator
    from airflow.operators.trigger_dagrun import TriggerDagRunOperator

PACS_CONN = os.environ.get("CLAIMED_WATCH_CONN_ID", "dicomweb_default")
INTERVAL = float(os.environ.get("CLAIMED_WATCH_INTERVAL", "10"))
SINCE = int(os.environ["CLAIMED_WATCH_SINCE"]) if os.environ.get("CLAIMED_WATCH_SINCE") else None
VARIABLE = f"{STATE_KEY}__{PACS_CONN}"


def _save_cursor(cursor: dict | None) -> None:
    from claimed_airflow.triggers.studies import save_cursor

    save_cursor(VARIABLE, cursor)


with DAG(
    "dicom_inference_poll",
    description="One dicom_inference run per new stable study of a PACS (a schedule and a deferrable sensor).",
    schedule=timedelta(minutes=5),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["claimed", "dicom", "inference"],
    doc_md=__doc__,
    default_args={"owner": "claimed"},
):
    studies = NewStudiesSensor(
        task_id="new_studies",
        dicomweb_conn_id=PACS_CONN,
        interval=INTERVAL,
        since=SINCE,
        cursor_variable=VARIABLE,
        timeout=24 * 3600,
    )
    started = TriggerDagRunOperator.partial(
        task_id="start_inference",
        trigger_dag_id="dicom_inference",
        skip_when_already_exists=True,
        wait_for_completion=False,
    ).expand_kwargs(studies.output)
    started >> PythonOperator(
        task_id="save_cursor",
        python_callable=_save_cursor,
        op_args=[studies.output["cursor"]],
        trigger_rule="none_failed",  # a study already started is a skipped start
    )
