"""Read a folder, glob or single DICOM file into a metadata table and a folder of readable files."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from claimed_airflow.core import InputPath, OutputPath, component, reject
from claimed_airflow.core.errors import ClaimedError

TAGS = (
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "BodyPartExamined",
    "PatientSex",
    "Rows",
    "Columns",
    "PhotometricInterpretation",
)
_AGE_UNITS = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}


def discover(source: str) -> tuple[Path, list[Path]]:
    """The base folder and the sorted candidate files of a folder, glob or single file."""
    path = Path(source)
    if path.is_dir():
        return path, sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    if path.is_file():
        return path.parent, [path]
    matches = sorted(Path(p) for p in glob.glob(source, recursive=True) if os.path.isfile(p))
    base = Path(os.path.commonpath([str(p.parent) for p in matches])) if matches else Path(".")
    return base, matches


def check_pixel_data(ds) -> None:
    """Raise ValueError when uncompressed pixel data is shorter than its Rows x Columns x frames need."""
    from pydicom.pixels.utils import get_expected_length

    if "PixelData" not in ds or ds.file_meta.TransferSyntaxUID.is_compressed:
        return
    expected, found = get_expected_length(ds, unit="bytes"), len(ds.PixelData)
    if found < expected:
        raise ValueError(f"pixel data truncated: {found} of {expected} bytes")


def age_in_years(value: str | None) -> float | None:
    """DICOM AS (``045Y``, ``006M``, ``010W``, ``020D``) -> years; None if absent or malformed."""
    if not value or len(value) < 2 or value[-1] not in _AGE_UNITS or not value[:-1].isdigit():
        return None
    return round(int(value[:-1]) * _AGE_UNITS[value[-1]], 3)


@component("input")
def dicom(
    source: InputPath,
    labels: InputPath | None = None,
    label_key: str = "file",
    label_column: str = "label",
    metadata: OutputPath = "metadata.parquet",
    files: OutputPath = "files",
) -> dict:
    """Read DICOM files into a metadata table (one row per file) plus a folder of the readable files.

    Files that are not readable DICOM are reported by name, listed in the run manifest and left out;
    the rest of the batch goes on.

    :param source: Folder (searched recursively), glob pattern or single file of DICOM data.
    :param labels: Optional CSV/Parquet table with labels, joined to the metadata on ``label_key``.
    :param label_key: Column present in both the metadata and the labels table (e.g. file, SOPInstanceUID).
    :param label_column: Column of the labels table copied into the metadata as ``label``.
    :param metadata: Parquet table: file, tags (PatientSex, PatientAge in years, Modality, ...), label.
    :param files: Folder with the readable DICOM files, named as in the ``file`` column.
    """
    import pandas as pd
    import pydicom
    from pydicom.errors import InvalidDicomError

    from claimed_airflow.core.tables import read_table, write_table

    base, candidates = discover(source)
    rows = []
    out = Path(files)
    out.mkdir(parents=True)
    for path in candidates:
        relative = path.relative_to(base).as_posix()
        try:
            ds = pydicom.dcmread(path)
            check_pixel_data(ds)
        except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as exc:
            reject(relative, f"not a readable DICOM file ({type(exc).__name__}: {exc})")
            continue
        row = {"file": relative, **{tag: _text(ds.get(tag)) for tag in TAGS}}
        row["PatientAge"] = age_in_years(_text(ds.get("PatientAge")))
        row["NumberOfFrames"] = int(ds.get("NumberOfFrames") or 1)
        row["TransferSyntaxUID"] = str(ds.file_meta.get("TransferSyntaxUID", ""))
        row["HasPixelData"] = "PixelData" in ds
        rows.append(row)
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    if not rows:
        raise ClaimedError(f"source: no readable DICOM file in {source} ({len(candidates)} file(s) checked)")
    table = pd.DataFrame(rows)
    for column in ("Rows", "Columns"):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("Int64")
    if labels is not None:
        table = _join_labels(table, read_table(labels, name="labels"), label_key, label_column)
    write_table(table, metadata)
    return {"files_read": len(rows), "files_rejected": len(candidates) - len(rows)}


def _text(value) -> str | None:
    return None if value is None or value == "" else str(value)


def _join_labels(table, labels, key: str, column: str):
    for name, frame in (("metadata", table), ("labels", labels)):
        if key not in frame.columns:
            raise ClaimedError(f"label_key: column {key!r} not in the {name} table ({', '.join(frame.columns)})")
    if column not in labels.columns:
        raise ClaimedError(f"label_column: column {column!r} not in the labels table ({', '.join(labels.columns)})")
    mapping = labels.drop_duplicates(key).set_index(key)[column]
    table["label"] = table[key].map(mapping)
    for value in table.loc[table["label"].isna(), key]:
        reject(str(value), f"no label in the labels table for {key}={value}")
    return table
