"""Append a run's predictions to the prediction log (partitioned Parquet under the output root)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from claimed_airflow.core import InputPath, component
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")


def _time(name: str, value: str | None) -> str | None:
    if value in (None, "", "None"):
        return None
    try:
        moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ClaimedError(f"{name}: {value!r} is not an ISO 8601 time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


@component("output")
def prediction_log(
    predictions: InputPath,
    arrived_at: str | None = None,
    started_at: str | None = None,
    run_id: str = "",
    log_root: str | None = None,
) -> dict:
    """Write one row per scored image to ``<log_root>/prediction_log/model=<name>/version=<version>/``.

    One Parquet file per (model, version, study), written in one step, so a retried or repeated run of a
    study replaces its rows instead of adding them twice (see :mod:`claimed_airflow.core.prediction_log`;
    ``core.prediction_log.read`` reads the dataset back). Each row: StudyInstanceUID, SeriesInstanceUID,
    SOPInstanceUID, frame, Modality, BodyPartExamined, PatientSex, PatientAge, prediction, score,
    probabilities (class -> probability), image_mean/std/min/max, arrived_at, started_at, ended_at (now)
    and run_id.

    :param predictions: Predictions of ``predict.deployed`` (model_name, model_version, p_<class>, image stats).
    :param arrived_at: When the study arrived (ISO 8601), e.g. from the run's conf; empty: unknown.
    :param started_at: When the run started (ISO 8601), e.g. ``{{ dag_run.start_date }}``.
    :param run_id: The run, recorded in each row.
    :param log_root: Root of the log (folder or URI, local or object storage); default the output root.
    """
    import pandas as pd

    from claimed_airflow.core import prediction_log as plog
    from claimed_airflow.core.context import current
    from claimed_airflow.core.storage import redact
    from claimed_airflow.core.tables import read_table

    root = log_root or current().root or None
    table = read_table(predictions, name="predictions")
    required = ["StudyInstanceUID", "SOPInstanceUID", "prediction", "model_name", "model_version"]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ClaimedError(f"predictions: column(s) {', '.join(missing)} missing; expected predict.deployed's")
    arrived, started = _time("arrived_at", arrived_at), _time("started_at", started_at)
    ended = datetime.now(UTC).isoformat()
    classes = [c[2:] for c in table.columns if c.startswith("p_")]
    files, rows_written = [], 0
    for (model_name, version, study), group in table.groupby(
        ["model_name", "model_version", "StudyInstanceUID"], sort=True
    ):
        rows = []
        for row in group.to_dict("records"):
            row = {k: (None if not isinstance(v, (list, dict)) and pd.isna(v) else v) for k, v in row.items()}
            rows.append(
                {
                    **row,
                    "frame": int(row["frame"]) if row.get("frame") is not None else None,
                    "probabilities": {c: float(row[f"p_{c}"]) for c in classes if row.get(f"p_{c}") is not None},
                    "arrived_at": arrived,
                    "started_at": started,
                    "ended_at": ended,
                    "run_id": run_id or None,
                }
            )
        files.append(plog.write(rows, root, str(model_name), str(version), str(study)))
        rows_written += len(rows)
    where = redact(plog.dataset_uri(root))
    log.info("prediction log: %d row(s) in %d file(s) under %s", rows_written, len(files), where)
    return {"rows_logged": rows_written, "log_files": len(files), "prediction_log": where}
