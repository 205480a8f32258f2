"""PACS pull: start ``dicom_inference`` once for every new stable study of a PACS (Airflow 3 event-driven scheduling).

An ``AssetWatcher`` runs :class:`~claimed_airflow.triggers.studies.StableStudyTrigger` in the triggerer: it
watches the DICOMweb PACS of connection ``$CLAIMED_WATCH_CONN_ID`` (default ``dicomweb_default``; Orthanc's
change feed when the server is Orthanc, else a QIDO-RS poll, every ``$CLAIMED_WATCH_INTERVAL`` seconds,
default 10) and emits one asset event per study. Each
event queues a run of this DAG; events that arrive together land in one run. Its first task reads the
studies from ``triggering_asset_events`` (each event's ``extra["payload"]``: ``study_instance_uid``,
``source``; also the asset's events registered after them, which no run may consume), the second starts
one ``dicom_inference`` run per study with the run id
``study__<hash of the study UID>`` (the one ``claimed-airflow listen`` uses): Airflow accepts that id
once, so a study announced twice (a triggerer restart re-announces the last poll's studies) is
skipped, not read twice.

On Airflow before 3.0 (no AssetWatcher) use ``claimed-airflow listen`` (push), or a short schedule
with a deferrable sensor (see docs/guides/study-arrival.md).
"""

from __future__ import annotations

import os

from claimed_airflow.version_compat import require_airflow

require_airflow("3.0.0", "dicom_inference_watch (event-driven scheduling with an AssetWatcher)")

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator  # noqa: E402
from airflow.sdk import DAG, Asset, AssetWatcher, task  # noqa: E402

from claimed_airflow.triggers.studies import StableStudyTrigger  # noqa: E402

PACS_CONN = os.environ.get("CLAIMED_WATCH_CONN_ID", "dicomweb_default")
INTERVAL = float(os.environ.get("CLAIMED_WATCH_INTERVAL", "10"))  # seconds between polls of the PACS

STUDIES = Asset(
    name="pacs_stable_studies",
    uri=f"dicomweb://{PACS_CONN}",
    watchers=[
        AssetWatcher(
            name="pacs_stable_studies_watcher",
            trigger=StableStudyTrigger(dicomweb_conn_id=PACS_CONN, interval=INTERVAL),
        )
    ],
)


@task(inlets=[STUDIES])
def studies_of(triggering_asset_events=None, inlet_events=None) -> list[dict]:
    """One ``{"trigger_run_id", "conf"}`` per study announced in the events that started this run, and in the
    asset's events registered after them.

    The second part is for events no run consumes: on Airflow 3.3.2 with SQLite, an event registered while
    the scheduler creates this run (seen here: 2 of a burst of 3, 40 ms apart) finds the run queue entry
    still there, queues nothing, and the entry is then deleted. A study that does get a run of its own
    later is skipped there by its run id.
    """
    import logging

    from claimed_airflow.pacs.listener import study_run_id
    from claimed_airflow.pacs.query import _UID

    events = [event for found in (triggering_asset_events or {}).values() for event in found]
    if events and inlet_events is not None:
        newest, accessor = max(event.timestamp for event in events), inlet_events[STUDIES]
        if hasattr(accessor, "after"):  # Airflow 3.3: a query of the events since then
            events += list(accessor.after(newest))
        else:
            events += [event for event in accessor if event.timestamp > newest]
    found: dict[str, str] = {}
    for event in events:
        payload = (event.extra or {}).get("payload") or {}
        uid = str(payload.get("study_instance_uid") or "")
        if _UID.fullmatch(uid):
            found[uid] = payload.get("source") or PACS_CONN
        else:
            logging.getLogger("claimed_airflow").warning("an event without a valid study_instance_uid was ignored")
    return [
        {"trigger_run_id": study_run_id(uid), "conf": {"study_instance_uid": uid, "source": source}}
        for uid, source in found.items()
    ]


with DAG(
    "dicom_inference_watch",
    description="One dicom_inference run per new stable study of a PACS (an AssetWatcher on its change feed).",
    schedule=[STUDIES],
    catchup=False,
    max_active_runs=1,
    tags=["claimed", "dicom", "inference"],
    doc_md=__doc__,
    default_args={"owner": "claimed"},
):
    TriggerDagRunOperator.partial(
        task_id="start_inference",
        trigger_dag_id="dicom_inference",
        logical_date=None,
        skip_when_already_exists=True,
        wait_for_completion=False,
    ).expand_kwargs(studies_of())
