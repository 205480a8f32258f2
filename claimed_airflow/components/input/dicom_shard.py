"""Read one shard of a folder ``input.dicom_listing`` listed (see ``input/dicom_listing.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, component


@component("input", data_parallel=True)
def dicom_shard(
    files: InputPath,
    shard_tables: InputPath,
    shard_index: int | None = None,
    labels: InputPath | None = None,
    label_key: str = "file",
    label_column: str = "label",
    duplicates: Literal["reject", "keep"] = "reject",
    max_rejected: int | None = None,
    metadata: OutputPath = "metadata.parquet",
    instances: OutputPath = "files",
) -> dict:
    """Read one shard of a listed folder as ``input.dicom`` reads a source: a metadata row per readable file.

    Only the shard's files are staged (from an object store: downloaded) and read; unreadable files and a
    SOPInstanceUID repeated within the shard are reported and set aside. A shard without a readable file
    writes an empty table (``input.dicom_merge`` fails only when every shard is empty). Without
    ``shard_index`` one task reads every shard, one after another.

    :param files: The folder ``input.dicom_listing`` listed (its ``source``).
    :param shard_tables: ``input.dicom_listing``'s shard tables.
    :param shard_index: The shard to read (absent: every shard).
    :param labels: Optional CSV/Parquet table with labels, joined to the metadata on ``label_key``.
    :param label_key: Column present in both the metadata and the labels table (e.g. file, SOPInstanceUID).
    :param label_column: Column of the labels table copied into the metadata as ``label``.
    :param duplicates: A SOPInstanceUID met again: ``reject`` sets the later file aside, ``keep`` keeps it.
    :param max_rejected: Fail the task when more files than this are set aside in the shard.
    :param metadata: Parquet table of the shard's readable files (input.dicom's columns).
    :param instances: Folder with the shard's readable files, named as in the ``file`` column.
    """
    from claimed_airflow.components.input.dicom import read_files
    from claimed_airflow.core.paths import inside
    from claimed_airflow.core.sharding import announce, files_of

    names = files_of(shard_tables, shard_index)
    announce("input.dicom_shard", shard_index, len(names))
    base = Path(files)
    for name in names:  # a shard table is a file: hostile until checked
        inside(base, name)
    return read_files(
        base, [base / name for name in names], f"shard {shard_index}", labels, label_key, label_column,
        duplicates, max_rejected, metadata, instances, empty_ok=True,
    )  # fmt: skip
