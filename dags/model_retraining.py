"""
### Model retraining

Runs after a monitoring alert (an event of the Asset `claimed://retrain/<model>` that `model_monitoring`
emits) or on demand; retrains on the union of the original set and the studies radiologists labelled
since, then compares the new version with the deployed one on the same labelled window:

1. **champion** pins the deployed version (`predict.resolve_model`),
2. **sources** takes the labelled studies: the `extra_sources` Param, else the `extra_sources` of the
   retrain event (its extra; on a run started by hand, the newest event's), each `{source, labels,
   label_key}` (a folder, glob, URI or PACS query such as `dicomweb://pacs_default?study_date=...`, and the
   labels table `input.labels` writes, keyed by SOPInstanceUID); they are checked before anything runs,
3. **retrain** starts `dicom_to_deployment` with `extra_sources` (read with its `dicom_source` before the
   cohort step) and `flagship_conf`, and waits for it (deferred: no worker slot is held); the new model
   passes the flagship's gate and, with `require_approval` in `flagship_conf`, the reviewer's approval,
4. **challenger** pins the newest version; **deployed** ends the run here when there is none (not blessed,
   or rejected),
5. **labelled** / **labelled_images** / **score** / **prediction_log** read the labelled studies with the
   challenger and log its predictions (the champion read them when they arrived),
6. **compare** (`monitoring.model_report` with `champion`): both versions' accuracy on the labelled images
   both scored in the last `window_days`; **verdict** says which is better.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

try:
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
except ImportError:  # Airflow 2.11 without the standard provider
    from airflow.operators.trigger_dagrun import TriggerDagRunOperator

from claimed_airflow.components.input._union import EXTRA_SOURCE_SCHEMA, MAX_SOURCES
from claimed_airflow.operators import (
    DeployedPredictOperator,
    DicomInputOperator,
    DicomToImagesTransformOperator,
    ModelReportMonitoringOperator,
    PredictionLogOutputOperator,
    ResolveModelPredictOperator,
)
from claimed_airflow.version_compat import asset

MODEL = "chestxray_mobilenet_v2"  # the model dicom_to_deployment deploys
RETRAIN = asset(f"claimed://retrain/{MODEL}", group="model")  # as model_monitoring's retrain_asset(MODEL)


@task(inlets=[RETRAIN], multiple_outputs=True)
def sources(params=None, triggering_asset_events=None, inlet_events=None) -> dict[str, Any]:
    """The labelled studies (Param, else the retrain event's extra), checked, and the flagship's conf."""
    import logging

    from claimed_airflow.components.input._union import check_extra_sources

    extra = params["extra_sources"]
    if not extra:
        events = [event for found in (triggering_asset_events or {}).values() for event in found]
        if not events and inlet_events is not None:  # started by hand: the newest retrain event
            accessor = inlet_events[RETRAIN]
            newest = accessor.ascending(False).limit(1) if hasattr(accessor, "limit") else list(accessor)[-1:]
            events = list(newest)  # Airflow 3.3 asks for the newest only; before, all are read
        named = [(event.extra or {}).get("extra_sources") for event in events]
        extra = next((found for found in reversed(named) if found), [])
    checked = check_extra_sources(extra)
    if not checked:
        raise ValueError("extra_sources: no labelled studies named (Param extra_sources or the retrain event's extra)")
    conf = {**params["flagship_conf"], "extra_sources": checked, "models_root": params["models_root"]}
    logging.getLogger("claimed_airflow").info("retraining on the original set and %d labelled source(s)", len(checked))
    first, rest = checked[0], checked[1:]
    return {"conf": conf, "source": first["source"], "labels": first["labels"], "label_key": first["label_key"],
            "rest": rest}  # fmt: skip


@task.short_circuit
def deployed(champion: str, challenger: str) -> bool:
    """True when the retrained model was deployed (a version newer than the champion's)."""
    if str(challenger) == str(champion):
        print(f"no new version deployed (still {champion}): the gate or the reviewer refused the retrained model")
        return False
    return True


@task
def verdict(summary: str) -> str:
    """Which version is better on the labelled window, from the comparison's summary."""
    from claimed_airflow.core import storage

    versions = storage.read_json(summary).get("versions")
    if not versions:
        text = "no labelled image was scored by both versions in the window: no comparison"
    else:
        accuracy = versions["accuracy"]
        text = (
            f"version {versions['better']} is better: champion {versions['champion']} accuracy"
            f" {accuracy[versions['champion']]}, challenger {versions['challenger']}"
            f" {accuracy[versions['challenger']]} on {versions['images']} labelled image(s)"
        )
    print(text)
    return text


with DAG(
    dag_id="model_retraining",
    description="After a monitoring alert: retrain on the union, then champion against challenger.",
    doc_md=__doc__,
    schedule=[RETRAIN],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["claimed", "monitoring", "computer-vision"],
    default_args={"owner": "claimed"},
    params={
        "extra_sources": Param([], type="array", maxItems=MAX_SOURCES, items=EXTRA_SOURCE_SCHEMA,
                               description="The labelled studies [{source, labels, label_key}]; empty: the retrain "
                               "event's extra_sources."),
        "flagship_conf": Param({}, type="object",
                               description="More dicom_to_deployment Params (dicom_source, epochs, ...)."),
        "models_root": Param("", type="string", description="Model store; empty: <output root>/models."),
        "log_root": Param("", type="string", description="Root of the prediction log; empty: the output root."),
        "window_days": Param(30, type="integer", minimum=1, maximum=366,
                             description="Compare on the labelled predictions of this many days."),
    },
) as dag:  # fmt: skip
    store = "{{ params.models_root }}"
    champion = ResolveModelPredictOperator(task_id="champion", model=MODEL, models_root=store)
    union = sources()
    retrain = TriggerDagRunOperator(
        task_id="retrain",
        trigger_dag_id="dicom_to_deployment",
        conf=union["conf"],
        wait_for_completion=True,
        deferrable=True,
        poke_interval=30,
        allowed_states=["success"],
        failed_states=["failed"],
    )
    challenger = ResolveModelPredictOperator(task_id="challenger", model=MODEL, models_root=store)
    champion >> union >> retrain >> challenger
    gate = deployed(champion.output["model_version"], challenger.output["model_version"])
    labelled = DicomInputOperator(
        task_id="labelled",
        source=union["source"],
        labels=union["labels"],
        label_key=union["label_key"],
        extra_sources=union["rest"],
    )
    gate >> labelled
    images = DicomToImagesTransformOperator(
        task_id="labelled_images",
        metadata=labelled.output["metadata"],
        files=labelled.output["files"],
        size=challenger.output["image_size"],
    )
    score = DeployedPredictOperator(
        task_id="score", images=images.output["images"], model=challenger.output["model"], models_root=store
    )
    log = PredictionLogOutputOperator(
        task_id="prediction_log",
        predictions=score.output["predictions"],
        run_id="{{ run_id }}",
        log_root="{{ params.log_root }}",
    )
    compare = ModelReportMonitoringOperator(
        task_id="compare",
        model_name=MODEL,
        champion=champion.output["model_version"],
        window_days="{{ params.window_days }}",
        history_days="{{ params.window_days }}",
        log_root="{{ params.log_root }}",
        models_root=store,
    )
    log >> compare
    verdict(compare.output["summary"])
