"""List a folder into shard tables without opening a file: the first of three steps that read a cohort too
large for one task.

``input.dicom`` lists, reads and copies every file of its source in one task. For a research export of a
million instances that task takes the better part of an hour; in shards the same work is three steps:

- ``input.dicom_listing`` (here) lists the folder (no file opened) into shard tables of file names;
- ``input.dicom_shard`` runs once per shard (``.expand(shard_index=...)``; one pod each on Kubernetes) and
  reads that shard's files only, as ``input.dicom`` reads a source;
- ``input.dicom_merge`` joins the shards' tables and folders, sets aside a SOPInstanceUID already met in an
  earlier shard, and writes what ``input.dicom`` writes for the same folder: the same metadata table, the same
  folder of files, and shard tables (one per listed shard) that the data-parallel steps downstream expand over.

``claimed_airflow.operators.sharding.dicom_input_in_shards`` wires the three into a DAG.
"""

from __future__ import annotations

import logging
from pathlib import Path

from claimed_airflow.core import OutputPath, component
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")


@component("input")
def dicom_listing(
    source: str, shards: int = 1, shard_bytes: str | None = None, shard_tables: OutputPath = "shards"
) -> dict:
    """List a folder of DICOM files into shard tables without opening a file: the first step of a sharded read.

    A local folder is searched recursively (hidden files and DICOMDIRs skipped, as ``input.dicom`` does), an
    ``s3://`` (or other fsspec) prefix is listed on the object store: nothing is downloaded. The files, in the
    order ``input.dicom`` reads them, are cut into ``shards`` shards by count or into shards of at most
    ``shard_bytes`` bytes; the same folder gives the same shards. The names are relative to ``source``
    (``input.dicom_shard``'s ``files``). Returns ``shard_index``, the list to expand over.

    :param source: Folder or object-store prefix holding the DICOM files (a PACS query or a glob: use input.dicom).
    :param shards: Cut the files into this many shards by count.
    :param shard_bytes: Cut them instead into shards of at most this many bytes, e.g. 512MB or 2GiB (a larger file
        is a shard alone). Not with ``shards``.
    :param shard_tables: Folder of shard tables ``shard-NNNNN.parquet``, one per shard: column ``file``.
    """
    from claimed_airflow.core import storage
    from claimed_airflow.core.sharding import check_cut, write_tables

    limit = check_cut(shards, shard_bytes)
    names, sizes = _list_local(source) if storage.is_local(source) else _list_remote(source)
    indexes = write_tables(names, shards, shard_tables, limit, sizes=sizes)
    log.info("%d file(s) listed in %s, cut into %d shard(s)", len(names), storage.redact(source), len(indexes))
    return {"files_listed": len(names), "shard_index": indexes}


def _list_local(source: str) -> tuple[list[str], list[int]]:
    """A local folder's candidate files, in the order and with the rules of ``input.dicom``'s ``discover``, and
    their sizes: names and numbers only, not a path object per file."""
    from claimed_airflow.core import storage

    folder = Path(storage.local_path(source)).expanduser()
    if not folder.is_dir():
        raise ClaimedError(f"source: not a folder: {source} (a glob, DICOMDIR or single file: use input.dicom)")
    names, sizes = [], []
    for name, size in _walk(folder, ""):
        names.append(name)
        sizes.append(size)
    return names, sizes


def _walk(folder: Path, prefix: str):
    """(relative name, size) of the files under ``folder``, depth first with each folder's entries sorted by name:
    the order of sorted paths (part by part). Hidden entries, DICOMDIRs and links to folders are skipped, as the
    recursive glob of ``discover`` skips them."""
    import os

    from claimed_airflow.components.input.dicom import is_dicomdir

    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), f"{prefix}{entry.name}/")
        elif entry.is_file() and not (entry.name.upper() == "DICOMDIR" and is_dicomdir(Path(entry.path))):
            yield f"{prefix}{entry.name}", entry.stat().st_size


def _list_remote(source: str) -> tuple[list[str], list[int]]:
    """An object-store prefix's files (hidden ones and DICOMDIRs skipped), in ``input.dicom``'s order, with sizes."""
    from claimed_airflow.core import storage

    if storage.protocol(source).lower() in storage.QUERY_SCHEMES:
        raise ClaimedError(f"source: {storage.redact(source)} is a PACS query; read it with input.dicom")
    import fsspec

    fs, prefix = fsspec.core.url_to_fs(source)
    prefix = prefix.rstrip("/")
    if not fs.isdir(prefix):
        raise ClaimedError(f"source: not a folder or prefix: {storage.redact(source)}")
    found = []
    for path, info in fs.find(prefix, detail=True).items():
        relative = path[len(prefix) :].lstrip("/")
        parts = relative.split("/")
        if info.get("type") == "file" and not any(p.startswith(".") for p in parts) and parts[-1].upper() != "DICOMDIR":
            found.append((parts, relative, int(info.get("size") or 0)))
    found.sort()  # the order of input.dicom's sorted paths: part by part
    return [relative for _, relative, _ in found], [size for _, _, size in found]
