"""
### Model monitoring

Watches a deployed model through its prediction log (written by `dicom_inference`), daily and on demand:

1. **monitor** reads the log's window (`window_days` ending at the run's data interval end, or
   `window_end`) and compares it with the model's reference profile (`reference_profile.json`, stored
   beside the model by `dicom_to_deployment`): input drift (two-sample Kolmogorov-Smirnov per image
   statistic, chi-square per DICOM header field) and prediction drift (chi-square), with
   Benjamini-Hochberg over all tests (`alpha`: the false discovery rate); accuracy and per-class recall on
   the predictions radiologists labelled (`monitoring.feedback`); the error rate per group of PatientSex
   and age group against the reference; with two model versions in the window, `champion` (the deployed
   one) against the other on the labelled images both scored; plots over `history_days`, an HTML report
   and a JSON summary,
2. **alert** is true when a threshold was crossed (drift, `max_accuracy_drop`, `max_gap_increase`);
   otherwise the tasks after it are skipped,
3. **notify** e-mails the findings to `notify_to` (connection `smtp_default`),
4. **retrain_signal** emits an event of the Asset `claimed://retrain/<model_name>` (extra: the verdict,
   the summary's URI and, with `retrain_sources`, the labelled studies as `extra_sources`): `model_retraining`
   is scheduled on it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, AssetAlias, Param, task

from claimed_airflow.operators import (
    ConditionBlessingDeployOperator,
    ModelReportMonitoringOperator,
    NotificationEmailMonitoringOperator,
)
from claimed_airflow.version_compat import asset

RETRAIN = AssetAlias("claimed-retrain")


def retrain_asset(model_name: str) -> Any:
    """The Asset a monitoring alert updates; ``schedule=[retrain_asset(name)]`` retrains after an alert."""
    return asset(f"claimed://retrain/{model_name}", group="model")


@task(outlets=[RETRAIN])
def retrain_signal(summary: str, verdict: str, params=None, run_id=None, outlet_events=None) -> str:
    """One event of ``claimed://retrain/<model_name>``, its extra naming the verdict and the summary."""
    asset = retrain_asset(params["model_name"])
    extra = {"model_name": params["model_name"], "verdict": verdict, "summary": summary, "run_id": run_id}
    if params.get("retrain_sources"):  # the labelled studies model_retraining trains on, with the original set
        extra["extra_sources"] = params["retrain_sources"]
    outlet_events[RETRAIN].add(asset, extra=extra)
    return asset.uri


with DAG(
    dag_id="model_monitoring",
    description="Drift, accuracy and fairness of a deployed model over a window of its prediction log.",
    doc_md=__doc__,
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["claimed", "monitoring"],
    default_args={"owner": "claimed"},
    params={
        "model_name": Param("chestxray_mobilenet_v2", type="string", pattern=r"^[A-Za-z0-9_.-]{1,128}$",
                            description="The model in the prediction log and the model store."),
        "window_days": Param(1, type="integer", minimum=1, maximum=366, description="Days in the window."),
        "window_end": Param("", type="string",
                            description="End of the window (ISO 8601); empty: the run's data interval end."),
        "history_days": Param(30, type="integer", minimum=1, maximum=366, description="Days of the plots."),
        "alpha": Param(0.01, type="number", exclusiveMinimum=0, exclusiveMaximum=1,
                       description="False discovery rate of the drift tests (Benjamini-Hochberg)."),
        "min_images": Param(30, type="integer", minimum=1, description="Fewer images in the window: no drift test."),
        "min_labelled": Param(20, type="integer", minimum=1, description="Fewer labels: no accuracy alert."),
        "max_accuracy_drop": Param(0.1, type="number", minimum=0, maximum=1,
                                   description="Alert when the accuracy falls this far below the reference's."),
        "max_gap_increase": Param(0.15, type="number", minimum=0, maximum=1,
                                  description="Alert when an attribute's error-rate gap grows this much."),
        "min_group": Param(10, type="integer", minimum=1, description="Smaller groups: no fairness metric."),
        "champion": Param("", type="string",
                          description="The deployed version, compared with a challenger scored on the same images."),
        "log_root": Param("", type="string", description="Root of the prediction log; empty: the output root."),
        "models_root": Param("", type="string", description="Model store; empty: <output root>/models."),
        "notify_to": Param([], type="array", items={"type": "string"},
                           description="E-mail the findings to these addresses (connection smtp_default)."),
        "retrain_sources": Param([], type="array", maxItems=32, items={"type": "object"},
                                 description="The labelled studies to retrain on, in the retrain event's extra "
                                 "(model_retraining's extra_sources: [{source, labels, label_key}])."),
    },
) as dag:  # fmt: skip
    monitor = ModelReportMonitoringOperator(
        task_id="monitor",
        model_name="{{ params.model_name }}",
        window_end="{{ params.window_end or data_interval_end or dag_run.run_after }}",
        window_days="{{ params.window_days }}",
        history_days="{{ params.history_days }}",
        alpha="{{ params.alpha }}",
        min_images="{{ params.min_images }}",
        min_labelled="{{ params.min_labelled }}",
        max_accuracy_drop="{{ params.max_accuracy_drop }}",
        max_gap_increase="{{ params.max_gap_increase }}",
        min_group="{{ params.min_group }}",
        champion="{{ params.champion }}",
        log_root="{{ params.log_root or '' }}",
        models_root="{{ params.models_root or '' }}",
    )
    alert = ConditionBlessingDeployOperator(task_id="alert", metrics=monitor.output["summary"], condition="alert")
    notify = NotificationEmailMonitoringOperator(
        task_id="notify",
        metrics=monitor.output["summary"],
        to="{{ params.notify_to }}",
        title="model_monitoring {{ params.model_name }}",
        verdict=monitor.output["verdict"],
    )
    alert >> [notify, retrain_signal(monitor.output["summary"], monitor.output["verdict"])]
