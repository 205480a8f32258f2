"""Shards: a cohort cut into N parts by count, one mapped task per part, the parts merged back.

An input component writes a folder of shard tables (``shard-00000.parquet``, ...: one column ``file``,
the files of that shard in the input's order) and returns ``shard_index`` ``[0, ..., N-1]``: the list a
DAG expands over (``.partial(shard_tables=...).expand(shard_index=input.output["shard_index"])``), so
XCom carries the folder's URI and N numbers, never file names. A data-parallel component (declared with
``@component(..., data_parallel=True)``) takes ``shard_tables`` and ``shard_index`` and works on that
shard's files only; ``transform.merge_shards`` joins the shard outputs into the layout one unsharded
task writes, one shard at a time (its memory does not grow with the rows).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")
KEY = "file"
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
MAX_SHARDS = 10_000  # Airflow's [core] max_map_length is 1024 by default; more is a mistake, not a plan


def table_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def bounds(total: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous [start, stop) ranges over ``total`` items, sizes differing by at most one."""
    check_count(shards)
    return [(i * total // shards, (i + 1) * total // shards) for i in range(shards)]


def check_count(shards: int) -> None:
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= MAX_SHARDS:
        raise ClaimedError(f"shards: must be a whole number from 1 to {MAX_SHARDS}, got {shards!r}")


def write_tables(names: Sequence[str], shards: int, folder: str | Path) -> list[int]:
    """Cut ``names`` (in their order) into ``shards`` tables under ``folder``; returns the shard indexes.

    The same names in the same order give the same shards. With more shards than names some are empty.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for index, (start, stop) in enumerate(bounds(len(names), shards)):
        column = pa.array([str(n) for n in names[start:stop]], type=pa.string())
        pq.write_table(pa.table({KEY: column}), out / table_name(index))
    return list(range(shards))


def files_of(shard_tables: str | Path, shard_index: int) -> list[str]:
    """The file names of shard ``shard_index`` of a folder of shard tables."""
    import pyarrow.parquet as pq

    path = Path(shard_tables) / table_name(shard_index) if shard_index >= 0 else None
    if path is None or not path.is_file():
        count = len(list(Path(shard_tables).glob("shard-*.parquet"))) if Path(shard_tables).is_dir() else 0
        raise ClaimedError(
            f"shard_index: no shard {shard_index} in shard_tables ({count} shard(s)); expected 0 to {count - 1}"
        )
    try:
        table = pq.read_table(path, columns=[KEY])
    except Exception as exc:  # noqa: BLE001 - not a shard table: the user's input to fix
        raise ClaimedError(f"shard_tables: {path.name} is not a shard table ({type(exc).__name__}: {exc})") from None
    return [str(name) for name in table.column(KEY).to_pylist()]


def announce(component: str, shard_index: int, count: int) -> None:
    """Log a shard's size; an empty shard is reported, not an error (the merge checks the whole)."""
    if count:
        log.info("%s: shard %d: %d item(s)", component, shard_index, count)
    else:
        log.warning("%s: shard %d is empty; its output is empty", component, shard_index)


def merge(parts: Iterable[Path], out: Path) -> dict:
    """Merge shard outputs (all tables, all folders or all JSON reports) into ``out``, in the given order."""
    parts = list(parts)
    if not parts:
        raise ClaimedError("parts: no shard output to merge")
    missing = [str(p) for p in parts if not p.exists()]
    if missing:
        raise ClaimedError(f"parts: {len(missing)} shard output(s) missing, e.g. {missing[0]}")
    if all(p.is_dir() for p in parts):
        return merge_folders(parts, out)
    if any(p.is_dir() for p in parts):
        raise ClaimedError("parts: a mix of folders and files; give the same output of every shard")
    suffix = {p.suffix.lower() for p in parts}
    if len(suffix) != 1:
        raise ClaimedError(f"parts: files of different kinds ({', '.join(sorted(suffix))}); one output of every shard")
    if suffix <= {".json"}:
        return merge_reports(parts, out)
    if suffix <= set(TABLE_SUFFIXES):
        return {"rows": merge_tables(parts, out)}
    raise ClaimedError(f"parts: cannot merge {suffix.pop() or 'suffix-less'} files (tables, JSON reports, folders)")


def merge_tables(parts: Sequence[Path], out: Path) -> int:
    """Concatenate tables (CSV text, or Parquet row group by row group); returns the rows written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        return _merge_csv(parts, out)
    return _merge_parquet(parts, out)


def _merge_csv(parts: Sequence[Path], out: Path) -> int:
    header, rows = None, 0
    with open(out, "w", encoding="utf-8", newline="") as target:
        for part in parts:
            with open(part, encoding="utf-8", newline="") as source:
                first = source.readline()
                if not first:
                    continue  # an empty shard's table
                if header is None:
                    header = first
                    target.write(first)
                elif first != header:
                    raise ClaimedError(f"parts: {part.name} has other columns than the first shard's table")
                for line in source:
                    target.write(line)
                    rows += 1
    return rows  # every shard empty: an empty file (transform.merge_shards' min_rows decides)


def _merge_parquet(parts: Sequence[Path], out: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    filled = [part for part in parts if pq.read_metadata(part).num_rows]  # footers only
    parts = filled or list(parts[:1])  # an empty shard's table may have no columns at all
    schemas = [pq.read_schema(part) for part in parts]
    try:
        schema = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ClaimedError(f"parts: the shard tables do not share columns ({exc})") from None
    names = schemas[0].names
    if any(s.names != names for s in schemas):
        raise ClaimedError("parts: the shard tables have other columns than the first shard's table")
    schema = pa.schema([schema.field(n) for n in names], metadata=schemas[0].metadata)
    rows = 0
    with pq.ParquetWriter(out, schema) as writer:
        for part in parts:
            source = pq.ParquetFile(part)
            for group in range(source.num_row_groups):
                batch = source.read_row_group(group).cast(schema)
                writer.write_table(batch)
                rows += batch.num_rows
    return rows


def merge_folders(parts: Sequence[Path], out: Path) -> dict:
    """Move every shard folder's files into ``out``; tables met in several shards (``index.csv``) are
    concatenated, any other name twice is an error (two shards wrote the same file)."""
    out.mkdir(parents=True, exist_ok=True)
    tables: dict[str, list[Path]] = {}
    files = 0
    for part in parts:
        for path in sorted(p for p in part.rglob("*") if p.is_file()):
            relative = path.relative_to(part).as_posix()
            if path.suffix.lower() in TABLE_SUFFIXES:
                tables.setdefault(relative, []).append(path)
                continue
            target = out / relative
            if target.exists():
                raise ClaimedError(f"parts: two shards wrote {relative}; shards must not overlap")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            files += 1
    rows = {}
    for relative, sources in sorted(tables.items()):
        rows[relative] = merge_tables(sources, out / relative)
    return {"files": files, "tables": len(rows), "table_rows": sum(rows.values())}


def merge_reports(parts: Sequence[Path], out: Path) -> dict:
    """Merge JSON reports: lists concatenated, numbers summed, other values those of the first shard."""
    merged: dict = {}
    for part in parts:
        try:
            data = json.loads(part.read_text())
        except ValueError as exc:
            raise ClaimedError(f"parts: {part.name} is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ClaimedError(f"parts: {part.name} is not a JSON object")
        for key, value in data.items():
            if key not in merged:
                merged[key] = list(value) if isinstance(value, list) else value
            elif isinstance(value, list):
                merged[key].extend(value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                merged[key] += value
    out.write_text(json.dumps(merged, indent=2))
    return {"reports": len(parts)}
