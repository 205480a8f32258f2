"""A cohort too large for one task, read in shards: list its folder, read each shard in its own task, merge.

``input.dicom`` lists, reads and copies every file of its source in one task. For a research export of a
million instances that one task takes the better part of an hour. Here the same work is three steps:

- ``input.dicom_listing`` lists the folder (no file opened) into shard tables of file names;
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
from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, component, reject
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")
UID = "SOPInstanceUID"


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


@component("input")
def dicom_merge(
    metadata_parts: list[str],
    files_parts: list[str],
    duplicates: Literal["reject", "keep"] = "reject",
    max_rejected: int | None = None,
    metadata: OutputPath = "metadata.parquet",
    files: OutputPath = "files",
    shard_tables: OutputPath = "shards",
) -> dict:
    """Join the shards ``input.dicom_shard`` read into what ``input.dicom`` writes for the whole folder.

    The tables are concatenated in shard order (one row group in memory) and the shards' folders linked into
    one (copied across file systems). A SOPInstanceUID already met in an earlier shard is reported
    and set aside with its file (``duplicates=reject``, the first file kept), as one task would; the UIDs met
    are held as 16-byte digests with their shard's number (20 bytes a UID). Shard table ``i`` holds
    the rows kept of shard ``i``, column ``file`` first: the data-parallel steps downstream expand over the
    returned ``shard_index``.

    :param metadata_parts: URIs of the shards' ``metadata`` tables, in shard order.
    :param files_parts: URIs of the shards' ``instances`` folders, in the same order.
    :param duplicates: A SOPInstanceUID of an earlier shard: ``reject`` sets the file aside, ``keep`` keeps it.
    :param max_rejected: Fail when more files than this are set aside here.
    :param metadata: Parquet table: one row per readable file of the whole folder (input.dicom's columns).
    :param files: Folder with the readable files, named as in the ``file`` column.
    :param shard_tables: Folder of shard tables ``shard-NNNNN.parquet``, one per shard: its rows, ``file`` first.
    """
    import tempfile

    import pyarrow.parquet as pq

    from claimed_airflow.core import storage

    metadata_parts = [metadata_parts] if isinstance(metadata_parts, str) else list(metadata_parts)
    files_parts = [files_parts] if isinstance(files_parts, str) else list(files_parts)
    if not metadata_parts or len(metadata_parts) != len(files_parts):
        raise ClaimedError(
            f"files_parts: {len(files_parts)} folder(s) for {len(metadata_parts)} table(s); one of each per shard"
        )
    with tempfile.TemporaryDirectory(prefix="claimed-merge-") as tmp:

        def staged(name: str, uris: list[str]) -> list[Path]:
            return [Path(storage.stage_input(f"{name}[{i}]", u, Path(tmp) / name / str(i))) for i, u in enumerate(uris)]

        tables, folders = staged("metadata_parts", metadata_parts), staged("files_parts", files_parts)
        if not any(pq.read_metadata(table).num_rows for table in tables):
            raise ClaimedError(f"metadata_parts: no readable DICOM file in any of the {len(tables)} shard(s)")
        merge = _Merge(tables, folders, Path(files), Path(shard_tables), duplicates, max_rejected)
        rows = merge.run(Path(metadata))
    return {"files_read": rows, "duplicates": merge.repeated, "shard_index": list(range(len(tables)))}


class _Merge:
    """input.dicom_merge's pass over the shards: rows selected, files linked, shard tables written as it goes."""

    def __init__(self, tables, folders, files: Path, shard_tables: Path, duplicates: str, max_rejected):
        self.tables, self.folders, self.files, self.shard_tables = tables, folders, files, shard_tables
        self.duplicates, self.max_rejected = duplicates, max_rejected
        self.seen = _SeenUIDs(tables)
        self.repeated = self.rejected = 0
        self.left_out: dict[int, set[str]] = {}  # part number: the files of its rows set aside

    def run(self, out: Path) -> int:
        """Write the merged table to ``out`` (its rows: the return value), the files and the shard tables."""
        import pyarrow.parquet as pq

        from claimed_airflow.core import sharding

        written: dict[int, object] = {}
        try:
            rows = sharding.merge_tables(self.tables, out, select=lambda i, t: self.select(i, t, written))
        finally:
            for writer in written.values():
                writer.close()
        self._shard_tables(pq.read_schema(out), written)
        sharding.merge_folders(self.folders, self.files, left_out=self.left_out)
        return rows

    def select(self, index: int, table, written: dict):
        """The rows of part ``index`` kept, appended to its shard table; the files of the others noted."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from claimed_airflow.core.sharding import table_name

        names, uids = table.column("file").to_pylist(), table.column(UID).to_pylist()
        first = self.seen.check(index, uids)
        keep = [True] * len(uids)
        for row, earlier in enumerate(first):
            if earlier is None:
                continue
            self.repeated += 1
            reason = f"duplicate {UID} {uids[row]} (first seen in {earlier})"
            if self.duplicates == "keep":
                log.warning("%s: %s; kept (duplicates=keep)", names[row], reason)
                continue
            keep[row] = False
            self.left_out.setdefault(index, set()).add(names[row])
            self.rejected += 1
            reject(names[row], reason)
            if self.max_rejected is not None and self.rejected > self.max_rejected:
                raise ClaimedError(f"max_rejected: more than {self.max_rejected} file(s) set aside (see the task log)")
        kept = table.filter(pa.array(keep, type=pa.bool_()))
        if index not in written:
            self.shard_tables.mkdir(parents=True, exist_ok=True)
            written[index] = pq.ParquetWriter(self.shard_tables / table_name(index), kept.schema)
        written[index].write_table(kept)
        return kept

    def _shard_tables(self, schema, written: dict) -> None:
        """An empty shard table for every shard without a row."""
        import pyarrow.parquet as pq

        from claimed_airflow.core.sharding import table_name

        self.shard_tables.mkdir(parents=True, exist_ok=True)
        for index in range(len(self.tables)):
            if index not in written:
                pq.write_table(schema.empty_table(), self.shard_tables / table_name(index))


class _SeenUIDs:
    """The SOPInstanceUIDs of the rows merged so far, held as sorted 16-byte digests (``sharding.digests``) with
    their shard's number (20 bytes a UID); a digest met again is looked up in that shard's table."""

    def __init__(self, tables: list[Path]):
        import numpy as np

        self.tables = tables
        self.digests, self.parts = np.empty(0, "V16"), np.empty(0, np.uint32)
        self.cached: tuple[int, dict] | None = None

    def check(self, index: int, uids: list[str]) -> list[str | None]:
        """For each UID of part ``index``: the file of an earlier row with it (None: new); then all are seen."""
        import numpy as np

        from claimed_airflow.core.sharding import digests as digests_of

        digests = digests_of(uids)
        found: list[str | None] = [None] * len(uids)
        if len(self.digests):
            at = np.minimum(np.searchsorted(self.digests, digests), len(self.digests) - 1)
            for row in np.flatnonzero(self.digests[at] == digests):
                found[row] = self._file_of(int(self.parts[at[row]]), uids[row])
        order = np.argsort(np.concatenate([self.digests, digests]), kind="stable")
        self.digests = np.concatenate([self.digests, digests])[order]
        self.parts = np.concatenate([self.parts, np.full(len(digests), index, np.uint32)])[order]
        return found

    def _file_of(self, index: int, uid: str) -> str | None:
        """The first file of part ``index`` with SOPInstanceUID ``uid`` (None: not there, a digest collision)."""
        import pyarrow.parquet as pq

        if self.cached is None or self.cached[0] != index:
            table = pq.read_table(self.tables[index], columns=["file", UID])
            first: dict = {}
            for name, value in zip(table.column("file").to_pylist(), table.column(UID).to_pylist(), strict=True):
                first.setdefault(value, name)
            self.cached = (index, first)
        return self.cached[1].get(uid)
