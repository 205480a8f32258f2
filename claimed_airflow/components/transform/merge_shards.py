"""Merge the outputs of a data-parallel component's shards into the layout one unsharded task writes."""

from __future__ import annotations

import tempfile
from pathlib import Path

from claimed_airflow.core import OutputPath, component
from claimed_airflow.core.errors import ClaimedError


@component("transform")
def merge_shards(parts: list[str], min_rows: int = 1, merged: OutputPath = "merged") -> dict:
    """Join the outputs of the shards of a mapped task (one output, every shard) into one, in shard order.

    Folders (``images``, ``files``) become one folder: their files linked in (copied across file systems),
    tables met in every shard (``index.csv``) concatenated; a file name written by two shards is an error.
    Tables (CSV or Parquet) and JSON reports become ``merged/<their name>``: rows concatenated (Parquet
    columns promoted to one type, e.g. a column empty in one shard), report lists concatenated and counts
    summed, but a count of distinct values the shards list (``_distinct``: the de-identification's
    ``uids_mapped``) counts them over all shards. Parts are read one at a time, rows streamed: memory does not
    grow with the number of rows. Empty shards add nothing.

    :param parts: URIs of the shards' outputs, in shard order (the mapped task's ``output["<name>"]``).
    :param min_rows: Fail when the merged tables have fewer rows (a folder without tables: files) than this
        (every shard empty or its files set aside).
    :param merged: Folder: the merged folder's layout, or ``<name of the parts>`` for tables and reports.
    """
    from claimed_airflow.core import sharding, storage

    if isinstance(parts, str):
        parts = [parts]
    if not parts:
        raise ClaimedError("parts: no shard output to merge")
    out = Path(merged)
    with tempfile.TemporaryDirectory(prefix="claimed-merge-") as tmp:
        local = [Path(storage.stage_input(f"parts[{i}]", uri, Path(tmp) / str(i))) for i, uri in enumerate(parts)]
        if all(path.is_dir() for path in local):
            result = sharding.merge(local, out)
            rows = result["table_rows"] if result["tables"] else result["files"]
        else:
            names = {path.name for path in local}
            if len(names) != 1:
                raise ClaimedError(f"parts: outputs of different names ({', '.join(sorted(names))}); one output")
            out.mkdir(parents=True)
            result = sharding.merge(local, out / names.pop())
            rows = result.get("rows", min_rows)
    if rows < min_rows:
        raise ClaimedError(f"parts: {rows} row(s) in all {len(parts)} shard(s), fewer than min_rows={min_rows}")
    return {"shards": len(parts), **result}
