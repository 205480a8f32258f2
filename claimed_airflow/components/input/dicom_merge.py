"""Join the shards ``input.dicom_shard`` read into what ``input.dicom`` writes (see ``input/dicom_listing.py``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from claimed_airflow.core import OutputPath, component, reject
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")
UID = "SOPInstanceUID"


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
        if not any([_rows(index, table) for index, table in enumerate(tables)]):  # every table checked
            raise ClaimedError(f"metadata_parts: no readable DICOM file in any of the {len(tables)} shard(s)")
        merge = _Merge(tables, folders, Path(files), Path(shard_tables), duplicates, max_rejected)
        rows = merge.run(Path(metadata))
    return {"files_read": rows, "duplicates": merge.repeated, "shard_index": list(range(len(tables)))}


def _rows(index: int, table: Path) -> int:
    """The rows of shard ``index``'s table; an error naming it unless it is input.dicom_shard's metadata."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(table)
    except Exception as exc:  # noqa: BLE001 - not Parquet: the user's input to fix
        kind = type(exc).__name__
        raise ClaimedError(f"metadata_parts[{index}]: {table.name} is not a Parquet table ({kind})") from None
    if meta.num_rows and not {"file", UID} <= set(meta.schema.names):
        raise ClaimedError(f"metadata_parts[{index}]: no columns file and {UID}; expected input.dicom_shard's metadata")
    return meta.num_rows


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
