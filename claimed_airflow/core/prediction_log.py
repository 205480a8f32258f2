"""The prediction log: one Parquet row per image a deployed model read, under ``<output root>/prediction_log``.

Layout (Hive partitions, readable by pyarrow, pandas, DuckDB and Spark as one dataset)::

    <root>/prediction_log/model=<name>/version=<version>/study-<hash of StudyInstanceUID>.parquet

One file per (model, version, study), written whole in one step (a local rename, or one object PUT),
so a retried or repeated run of the same study with the same model version replaces its rows, never
adds a second copy; a new version of the model adds a file beside it. The dataset only grows (append
only): nothing here deletes a file. ``output.prediction_log`` writes it; monitoring reads it with
:func:`read`.
"""

from __future__ import annotations

import hashlib
import io
import re
from typing import Any

from claimed_airflow.core import storage
from claimed_airflow.core.errors import ClaimedError

FOLDER = "prediction_log"
_PART = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
# column -> pyarrow type name; ``probabilities`` is map<string, double> (class -> probability)
COLUMNS = {
    "StudyInstanceUID": "string",
    "SeriesInstanceUID": "string",
    "SOPInstanceUID": "string",
    "frame": "int64",
    "Modality": "string",
    "BodyPartExamined": "string",
    "PatientSex": "string",
    "PatientAge": "float64",
    "prediction": "string",
    "score": "float64",
    "probabilities": "map",
    "image_mean": "float64",
    "image_std": "float64",
    "image_min": "float64",
    "image_max": "float64",
    "arrived_at": "timestamp",
    "started_at": "timestamp",
    "ended_at": "timestamp",
    "run_id": "string",
    # added later (files written before have them null): the header mix that monitoring compares
    "Manufacturer": "string",
    "PixelSpacing": "string",
    "PhotometricInterpretation": "string",
}


def dataset_uri(root: str | None = None) -> str:
    """The log's folder or URI: ``<root>/prediction_log`` (default root: the ``output_root`` setting)."""
    return storage.join(storage.normalize(root or storage.default_root()), FOLDER)


def file_uri(root: str | None, model_name: str, model_version: str, study_uid: str) -> str:
    """Where the rows of one (model, version, study) live."""
    for name, value in (("model_name", model_name), ("model_version", model_version)):
        if not _PART.match(value):
            raise ClaimedError(f"{name}: {value!r} is not a valid partition value (letters, digits, _ . -)")
    study = hashlib.sha256(study_uid.encode()).hexdigest()[:32]
    return storage.join(dataset_uri(root), f"model={model_name}", f"version={model_version}", f"study-{study}.parquet")


def schema():
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "map": pa.map_(pa.string(), pa.float64()),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    return pa.schema([(name, types[kind]) for name, kind in COLUMNS.items()])


def table_of(rows: list[dict[str, Any]]):
    """A pyarrow table of log rows (missing columns null; ``probabilities`` a dict class -> probability)."""
    import pandas as pd
    import pyarrow as pa

    frame = pd.DataFrame([{name: row.get(name) for name in COLUMNS} for row in rows], columns=list(COLUMNS))
    for name, kind in COLUMNS.items():
        if kind == "timestamp":
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
        elif kind == "string":
            frame[name] = frame[name].map(lambda v: None if v is None or pd.isna(v) else str(v))
        elif kind == "map":
            frame[name] = frame[name].map(lambda v: list(v.items()) if isinstance(v, dict) else None)
    return pa.Table.from_pandas(frame, schema=schema(), preserve_index=False)


def write(rows: list[dict[str, Any]], root: str | None, model_name: str, model_version: str, study_uid: str) -> str:
    """Write the rows of one study read by one model version; replaces an earlier file of the same key.

    Local: written beside the target, then renamed into place; object storage: one PUT (atomic per object).
    Returns the file's URI.
    """
    import pyarrow.parquet as pq

    uri = file_uri(root, model_name, model_version, study_uid)
    buffer = io.BytesIO()
    pq.write_table(table_of(rows), buffer, compression="zstd")
    if storage.is_local(uri):
        import tempfile
        from pathlib import Path

        target = Path(storage.local_path(uri))
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".", suffix=".tmp", delete=False) as handle:
            handle.write(buffer.getvalue())
        Path(handle.name).replace(target)
    else:
        fs = storage.filesystem(uri)
        try:
            fs.pipe_file(uri, buffer.getvalue())
        except Exception as exc:
            raise ClaimedError(f"cannot write {storage.redact(uri)}: {storage.redact(str(exc))}") from None
    return uri


def read(
    root: str | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    ended_after: Any = None,
    ended_until: Any = None,
):
    """The log as a pandas DataFrame (with ``model`` and ``version`` columns), optionally of one model/version.

    ``ended_after`` < ended_at <= ``ended_until`` (aware datetimes) keeps a time window (filtered in the scan).
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds

    uri = dataset_uri(root)
    fs = storage.filesystem(uri)
    path = storage.local_path(uri) if storage.is_local(uri) else uri.split("://", 1)[1]
    if not fs.exists(path):
        return pd.DataFrame(columns=[*COLUMNS, "model", "version"])
    partitioning = ds.partitioning(pa.schema([("model", pa.string()), ("version", pa.string())]), flavor="hive")
    # the schema given: files written before a column was added read it as null
    full = pa.schema([*schema(), ("model", pa.string()), ("version", pa.string())])
    dataset = ds.dataset(
        path, schema=full, filesystem=fs, format="parquet", partitioning=partitioning, exclude_invalid_files=False
    )
    expression = None
    for field, value in (("model", model_name), ("version", model_version)):
        if value is not None:
            condition = ds.field(field) == value
            expression = condition if expression is None else expression & condition
    moment = pa.timestamp("us", tz="UTC")
    for value, test in ((ended_after, lambda f, v: f > v), (ended_until, lambda f, v: f <= v)):
        if value is not None:
            condition = test(ds.field("ended_at"), pa.scalar(value, type=moment))
            expression = condition if expression is None else expression & condition
    return dataset.to_table(filter=expression).to_pandas()


# The feedback: radiologists' labels of logged images, beside the log (not inside it: the log is one dataset)
FEEDBACK_FOLDER = "prediction_feedback"
FEEDBACK_COLUMNS = {
    "SOPInstanceUID": "string",
    "label": "string",
    "model_version": "string",
    "prediction": "string",
    "labelled_at": "timestamp",
    "source": "string",
}


def feedback_uri(root: str | None, model_name: str, source: str) -> str:
    """Where the feedback of one label file (``source``: its content hash) for one model lives."""
    if not _PART.match(model_name) or not _PART.match(source):
        raise ClaimedError(f"model_name: {model_name!r} is not a valid partition value (letters, digits, _ . -)")
    base = storage.join(storage.normalize(root or storage.default_root()), FEEDBACK_FOLDER)
    return storage.join(base, f"model={model_name}", f"labels-{source}.parquet")


def write_feedback(rows: list[dict[str, Any]], root: str | None, model_name: str, source: str) -> tuple[str, bool]:
    """Write the feedback rows of one label file once: (URI, False) when that file's feedback is there already.

    Append only and idempotent per label file: the file is named by ``source`` (the label file's hash).
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    uri = feedback_uri(root, model_name, source)
    fs = storage.filesystem(uri)
    path = storage.local_path(uri) if storage.is_local(uri) else uri
    if fs.exists(path):
        return uri, False
    frame = pd.DataFrame([{n: row.get(n) for n in FEEDBACK_COLUMNS} for row in rows], columns=list(FEEDBACK_COLUMNS))
    frame["labelled_at"] = pd.to_datetime(frame["labelled_at"], utc=True, format="ISO8601")
    types = {"string": pa.string(), "timestamp": pa.timestamp("us", tz="UTC")}
    table = pa.Table.from_pandas(
        frame, schema=pa.schema([(n, types[k]) for n, k in FEEDBACK_COLUMNS.items()]), preserve_index=False
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    if storage.is_local(uri):
        import tempfile
        from pathlib import Path

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".", suffix=".tmp", delete=False) as handle:
            handle.write(buffer.getvalue())
        Path(handle.name).replace(target)
    else:
        try:
            fs.pipe_file(uri, buffer.getvalue())
        except Exception as exc:
            raise ClaimedError(f"cannot write {storage.redact(uri)}: {storage.redact(str(exc))}") from None
    return uri, True


def read_feedback(root: str | None, model_name: str):
    """The labels of one model's logged images: one row per SOPInstanceUID (the latest label wins)."""
    import pandas as pd

    base = storage.join(storage.normalize(root or storage.default_root()), FEEDBACK_FOLDER, f"model={model_name}")
    fs = storage.filesystem(base)
    path = storage.local_path(base) if storage.is_local(base) else base.split("://", 1)[1]
    files = sorted(fs.glob(f"{path}/labels-*.parquet")) if fs.exists(path) else []
    if not files:
        return pd.DataFrame(columns=list(FEEDBACK_COLUMNS))
    frames = []
    for name in files:
        with fs.open(name, "rb") as handle:
            frames.append(pd.read_parquet(handle))
    frame = pd.concat(frames, ignore_index=True).sort_values(["labelled_at", "source"], kind="stable")
    return frame.drop_duplicates("SOPInstanceUID", keep="last").reset_index(drop=True)
