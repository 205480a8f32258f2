"""Radiologists' labels into the prediction log's feedback, joined to the logged predictions by SOPInstanceUID."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime

from claimed_airflow.core import InputPath, component
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")


@component("monitoring")
def feedback(
    labels: InputPath,
    model_name: str,
    label_column: str = "label",
    labelled_at: str | None = None,
    log_root: str | None = None,
) -> dict:
    """Join a labels table to the model's prediction log by SOPInstanceUID; write the matches as feedback.

    The feedback lives beside the log (``<log_root>/prediction_feedback/model=<name>/labels-<hash>.parquet``),
    one file per label file, named by the hash of its content: importing the same label file again writes
    nothing (idempotent), a new one adds a file (append only); a later label of an image wins when read.
    Each row: SOPInstanceUID, label, the logged model_version and prediction, labelled_at, source (the hash).
    Labels of images the model never scored are counted, not written.

    :param labels: Labels table of ``input.labels`` (columns SOPInstanceUID and ``label_column``).
    :param model_name: The model whose prediction log gets the feedback.
    :param label_column: Column of the labels.
    :param labelled_at: When the labels were given (ISO 8601); default now.
    :param log_root: Root of the prediction log; default the output root.
    """
    from pathlib import Path

    from claimed_airflow.components.input.labels import check_label
    from claimed_airflow.core import prediction_log as plog
    from claimed_airflow.core.context import current
    from claimed_airflow.core.tables import read_table, require_columns

    root = log_root or current().root or None
    table = read_table(labels, name="labels")
    require_columns(
        table, ["SOPInstanceUID", label_column], param="labels", hint="input.labels with label_key SOPInstanceUID"
    )
    table = table[table[label_column].notna()]
    for n, value in enumerate(table[label_column]):
        check_label(value, f"labels: row {n}")
    try:
        moment = datetime.fromisoformat((labelled_at or datetime.now(UTC).isoformat()).replace("Z", "+00:00"))
    except ValueError:
        raise ClaimedError(f"labelled_at: {labelled_at!r} is not an ISO 8601 time") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    source = hashlib.sha256(Path(labels).read_bytes()).hexdigest()[:32]
    logged = plog.read(root, model_name)
    logged = logged.sort_values("ended_at", kind="stable").drop_duplicates("SOPInstanceUID", keep="last")
    joined = table.merge(logged[["SOPInstanceUID", "version", "prediction"]], on="SOPInstanceUID", how="inner")
    rows = [
        {
            "SOPInstanceUID": str(row["SOPInstanceUID"]),
            "label": str(row[label_column]),
            "model_version": str(row["version"]),
            "prediction": row["prediction"],
            "labelled_at": moment.isoformat(),
            "source": source,
        }
        for row in joined.to_dict("records")
    ]
    written = False
    if rows:
        _, written = plog.write_feedback(rows, root, model_name, source)
    unmatched = len(table) - len(joined)
    log.info(
        "feedback: %d label(s), %d matched a logged prediction, %d not; %s",
        len(table), len(joined), unmatched, "written" if written else "nothing new written",
    )  # fmt: skip
    return {"labels": len(table), "matched": len(joined), "unmatched": unmatched, "written": written}
