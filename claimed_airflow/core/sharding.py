"""Shards: a cohort cut into N parts by count or by bytes, one mapped task per part, the parts merged back.

An input component writes a folder of shard tables (``shard-00000.parquet``, ...: one column ``file``,
the files of that shard in the input's order; :func:`cuts` is the rule, by count or by ``shard_bytes``) and
returns ``shard_index`` ``[0, ..., N-1]``: the list a
DAG expands over (``.partial(shard_tables=...).expand(shard_index=input.output["shard_index"])``), so
XCom carries the folder's URI and N numbers, never file names. A data-parallel component (declared with
``@component(..., data_parallel=True)``) takes ``shard_tables`` and ``shard_index`` and works on that
shard's files only; ``transform.merge_shards`` joins the shard outputs into the layout one unsharded
task writes, one shard at a time (its memory does not grow with the rows). Given ``shard_tables`` and no
``shard_index``, one task runs every shard itself (:func:`spreads`; ``core.runner.run`` does it, under
spark-submit one Spark task per shard) and writes the merged outputs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")
KEY = "file"
FILES = "files"  # the input of a data-parallel component whose files a shard table names (relative paths)
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
ROW_GROUP = 1024 * 1024  # rows per merged Parquet row group: pyarrow's default, so a merge writes what one task does
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


def parse_bytes(shard_bytes: str | int | None) -> int | None:
    """``shard_bytes`` as a number of bytes: ``"512MB"``, ``"2 GiB"``, ``"1.5GB"``, ``"1000000"``; None: by count."""
    if shard_bytes is None or (isinstance(shard_bytes, str) and not shard_bytes.strip()):
        return None
    match = None if isinstance(shard_bytes, bool) else _SIZE.fullmatch(str(shard_bytes).strip())
    value = float(match.group(1)) * _UNITS[match.group(2).lower()] if match else 0.0
    if value < 1 or (match.group(2).lower() in ("", "b") and not value.is_integer()):
        raise ClaimedError(
            f"shard_bytes: expected a size like 512MB, 2GiB or a number of bytes (at least 1), got {shard_bytes!r}"
        )
    return int(value)


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]i?b|b|)", re.IGNORECASE)
_UNITS = {"": 1, "b": 1} | {
    f"{p}{i}b": (1024 if i else 1000) ** (n + 1) for n, p in enumerate("kmgt") for i in ("", "i")
}


def check_cut(shards: int, shard_bytes: str | int | None) -> int | None:
    """Check an input's ``shards`` and ``shard_bytes`` (one of them); returns ``shard_bytes`` in bytes or None."""
    check_count(shards)
    limit = parse_bytes(shard_bytes)
    if limit is not None and shards != 1:
        raise ClaimedError(f"shard_bytes: give shards ({shards}) or shard_bytes ({shard_bytes!r}), not both")
    return limit


def by_bytes(sizes: Sequence[int], limit: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges over files of ``sizes`` (in order), each at most ``limit`` bytes; a
    file larger than ``limit`` is a shard alone. Greedy: a shard ends where the next file would overflow it."""
    ranges, start, held = [], 0, 0
    for index, size in enumerate(sizes):
        if held and held + size > limit:
            ranges.append((start, index))
            start, held = index, 0
        held += size
    ranges.append((start, len(sizes)))  # no file at all: one empty shard
    if len(ranges) > MAX_SHARDS:
        raise ClaimedError(
            f"shard_bytes: {limit} bytes cuts {len(sizes)} files ({sum(sizes)} bytes) into {len(ranges)} shards, "
            f"more than {MAX_SHARDS}; give a larger size"
        )
    return ranges


def cuts(
    names: Sequence[str], shards: int = 1, shard_bytes: int | None = None, files=None, sizes: Sequence[int] = ()
) -> list[tuple[int, int]]:
    """The rule: ``shards`` ranges by count, or with ``shard_bytes`` ranges of at most that many bytes of the
    files (``sizes``, else those of ``<files>/<name>``). The same names, order and sizes give the same shards."""
    if shard_bytes is None:
        return bounds(len(names), shards)
    if not sizes:
        sizes = [(Path(files) / name).stat().st_size for name in names]
    return by_bytes(sizes, shard_bytes)


def write_tables(
    names: Sequence[str],
    shards: int,
    folder: str | Path,
    shard_bytes: int | None = None,
    files=None,
    rows=None,
    sizes: Sequence[int] = (),
) -> list[int]:
    """Cut ``names`` (in their order) into shard tables under ``folder`` (:func:`cuts`); returns the shard indexes.

    With ``rows`` (a metadata table, column ``file`` naming one of ``names``) each shard table holds its files'
    rows in their order, column ``file`` first, then the metadata columns (:func:`rows_of`); else the column
    ``file`` only. The same names in the same order (and rows) give the same shards. With more shards than
    names some are empty.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    ranges = cuts(names, shards, shard_bytes, files, sizes)
    parts = _split_rows(rows, names, ranges) if rows is not None else None
    for index, (start, stop) in enumerate(ranges):
        if parts is None:
            table = pa.table({KEY: pa.array([str(n) for n in names[start:stop]], type=pa.string())})
        else:
            table = pa.Table.from_pandas(next(parts), preserve_index=False)
        pq.write_table(table, out / table_name(index))
    if shard_bytes is not None:
        log.info("%d file(s) cut into %d shard(s) of at most %d bytes", len(names), len(ranges), shard_bytes)
    return list(range(len(ranges)))


def _split_rows(rows, names: Sequence[str], ranges: list[tuple[int, int]]):
    """The rows of each shard (those whose file is in its range of ``names``), in their order, ``file`` first;
    one shard's copy at a time (rows already in the names' order, as an input's are, are not copied whole)."""
    import numpy as np
    import pandas as pd

    position = pd.Index([str(n) for n in names]).get_indexer(rows[KEY].astype(str))
    if (position < 0).any():
        rows, position = rows[position >= 0], position[position >= 0]
    starts = np.array([start for start, _ in ranges])
    shard = np.searchsorted(starts, position, side="right") - 1  # the last range starting at or before it
    if (np.diff(shard) < 0).any():  # not in the names' order: one copy in shard order
        order = np.argsort(shard, kind="stable")
        rows, shard = rows.iloc[order], shard[order]
    ends = np.cumsum(np.bincount(shard, minlength=len(ranges)))
    columns = [KEY, *(c for c in rows.columns if c != KEY)]
    for index in range(len(ranges)):
        yield rows.iloc[(ends[index - 1] if index else 0) : ends[index]][columns]


def files_of(shard_tables: str | Path, shard_index: int) -> list[str]:
    """The file names of shard ``shard_index`` of a folder of shard tables."""
    import pyarrow.parquet as pq

    given = isinstance(shard_index, int) and shard_index >= 0
    path = Path(shard_tables) / table_name(shard_index) if given else None
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


def rows_of(shard_tables: str | Path, shard_index: int, metadata: str | Path | None = None):
    """The metadata rows of shard ``shard_index`` (a DataFrame): with ``metadata``, that table's rows of the
    shard's files (a Parquet table read filtered, so memory holds the shard's rows); else the rows its shard
    table carries (:func:`write_tables`), or None when it carries the column ``file`` only."""
    import pyarrow.parquet as pq

    from claimed_airflow.core.tables import read_table

    if metadata is None:
        files_of(shard_tables, shard_index)  # its checks and errors
        table = pq.read_table(Path(shard_tables) / table_name(shard_index))
        return table.to_pandas() if table.num_columns > 1 else None
    names = files_of(shard_tables, shard_index)
    path = Path(metadata)
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            return _filtered(path, names).to_pandas()
        except Exception:  # noqa: BLE001 - not filterable so (e.g. no string column file): read whole below
            pass
    table = read_table(path, name="metadata")
    if KEY not in table.columns:
        raise ClaimedError(f"metadata: column {KEY!r} missing; expected the output of input.dicom")
    return table[table[KEY].astype(str).isin(set(names))]


def _filtered(path: Path, names: list[str], batch: int = 65_536):
    """The rows of a Parquet table whose ``file`` is one of ``names``, read in batches of ``batch`` rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path, pre_buffer=False)
    wanted = pa.array(names, type=pa.string())
    kept = [part.filter(pc.is_in(part.column(KEY), value_set=wanted)) for part in source.iter_batches(batch)]
    return pa.Table.from_batches(kept, schema=source.schema_arrow)


def index_of(spec, values: dict) -> int | None:
    """The shard a run works on: ``shard_index`` of a data-parallel component given ``shard_tables``, else None."""
    if not spec.data_parallel or values.get("shard_tables") in (None, "") or values.get("shard_index") in (None, ""):
        return None
    return int(values["shard_index"])


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


def merge_tables(parts: Sequence[Path], out: Path, select=None) -> int:
    """Concatenate tables (CSV text, or Parquet row group by row group, ``select`` as :func:`_merge_parquet`
    takes it); returns the rows written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        if select is not None:
            raise ClaimedError(f"parts: rows are selected from Parquet tables only, not {out.name}")
        return _merge_csv(parts, out)
    return _merge_parquet(parts, out, select)


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


def _merge_parquet(parts: Sequence[Path], out: Path, select=None) -> int:
    """Row groups of ``ROW_GROUP`` rows, as one ``write_table`` of all the rows writes them (the same bytes
    when the shards' schemas equal the whole's); at most about two row groups are held in memory. A column
    with no value in a part takes its type from the others. ``select(index, table)``, if given, is called
    with each row group read (cast to the merged schema) of part ``index`` and returns the rows to write."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    footers = [pq.read_metadata(part) for part in parts]
    filled = [i for i, footer in enumerate(footers) if footer.num_rows] or [0]  # an empty table may lack columns
    schemas = [_schema_of(footers[i]) for i in filled]
    try:
        schema = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ClaimedError(f"parts: the shard tables do not share columns ({exc})") from None
    names = schemas[0].names
    if any(s.names != names for s in schemas):
        raise ClaimedError("parts: the shard tables have other columns than the first shard's table")
    first = footers[filled[0]].schema.to_arrow_schema()  # a column without a value anywhere: its type as written
    fields = [schema.field(n) if schema.field(n).type != pa.null() else first.field(n) for n in names]
    schema = pa.schema(fields, metadata=first.metadata)
    rows, held = 0, []
    with pq.ParquetWriter(out, schema) as writer:
        for index in filled:
            source = pq.ParquetFile(parts[index])
            for group in range(source.num_row_groups):
                table = source.read_row_group(group).cast(schema)
                held.append(select(index, table) if select else table)
                if sum(t.num_rows for t in held) >= ROW_GROUP:
                    whole = pa.concat_tables(held).combine_chunks()  # pages as one table's
                    full = whole.num_rows // ROW_GROUP * ROW_GROUP
                    writer.write_table(whole.slice(0, full), row_group_size=ROW_GROUP)
                    held, rows = [whole.slice(full)], rows + full
        whole = pa.concat_tables(held).combine_chunks() if held else schema.empty_table()
        if whole.num_rows or not rows:
            writer.write_table(whole, row_group_size=ROW_GROUP)
        rows += whole.num_rows
    return rows


def _schema_of(meta):
    """A Parquet footer's schema, a column without any value (all null, by its statistics) typed null."""
    import pyarrow as pa

    schema = meta.schema.to_arrow_schema()
    groups = [meta.row_group(g) for g in range(meta.num_row_groups)]
    if len(schema) != meta.num_columns:  # nested columns: no one statistic per field
        return schema
    for index, field in enumerate(schema):
        stats = [(group.column(index).statistics, group.num_rows) for group in groups]
        if all(s is not None and s.has_null_count and s.null_count == rows for s, rows in stats):
            schema = schema.set(index, pa.field(field.name, pa.null()))
    return schema


def merge_folders(parts: Sequence[Path], out: Path, left_out: dict[int, set[str]] | None = None) -> dict:
    """Every shard folder's files into ``out``, hard-linked (no byte copied; a copy where a link cannot be made,
    e.g. across file systems); tables met in several shards (``index.csv``) are concatenated, any other name
    twice is an error (two shards wrote the same file). With ``left_out`` (part number: relative names), those
    files are left out and nothing is taken for a table (a folder of DICOM files, input.dicom_merge)."""
    out.mkdir(parents=True, exist_ok=True)
    tables: dict[str, list[Path]] = {}
    files = 0
    for index, part in enumerate(parts):
        for path in sorted(p for p in part.rglob("*") if p.is_file()):
            relative = path.relative_to(part).as_posix()
            if left_out is not None and relative in left_out.get(index, ()):
                continue
            if left_out is None and path.suffix.lower() in TABLE_SUFFIXES:
                tables.setdefault(relative, []).append(path)
                continue
            target = out / relative
            if target.exists():
                raise ClaimedError(f"parts: two shards wrote {relative}; shards must not overlap")
            target.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(path, target)
            files += 1
    rows = {}
    for relative, sources in sorted(tables.items()):
        rows[relative] = merge_tables(sources, out / relative)
    return {"files": files, "tables": len(rows), "table_rows": sum(rows.values())}


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link of a shard's file (shard outputs are never written again), else a copy of its bytes."""
    try:
        os.link(source, target)
    except OSError:  # another file system (EXDEV), or one without links
        shutil.copyfile(source, target)


DISTINCT = "_distinct"  # a shard report's {field: [values]}: the merged field counts the distinct values


def merge_reports(parts: Sequence[Path], out: Path) -> dict:
    """Merge JSON reports (:func:`combine`), one at a time: the lists (a report's per-file entries) are written
    out as they come, so memory holds one shard's report, not the merged one; the merged file has the bytes of
    ``json.dumps(merged, indent=2)``. A count of distinct values (the UIDs a de-identification mapped) does not
    add up over shards that share values: a shard report lists them under ``_distinct``
    (``{"uids_mapped": [...]}``) and the merged field is the number of distinct values of all shards, as one
    unsharded task counts them (held as 16-byte digests); the lists are left out of the merged report."""
    import tempfile

    merged: dict = {}
    distinct: dict[str, list] = {}
    with tempfile.TemporaryDirectory(prefix="claimed-report-") as tmp:
        spills: list[_Spill] = []

        def spill(values: list) -> _Spill:
            spills.append(_Spill(Path(tmp) / f"{len(spills)}.json"))
            spills[-1].extend(values)
            return spills[-1]

        try:
            for part in parts:
                try:
                    data = json.loads(part.read_text())
                except ValueError as exc:
                    raise ClaimedError(f"parts: {part.name} is not JSON ({exc})") from None
                if not isinstance(data, dict):
                    raise ClaimedError(f"parts: {part.name} is not a JSON object")
                lists = data.pop(DISTINCT, None) or {}
                if not isinstance(lists, dict) or not all(isinstance(v, list) for v in lists.values()):
                    raise ClaimedError(f"parts: {part.name}: {DISTINCT} must map fields to lists of values")
                for name, values in lists.items():
                    distinct.setdefault(name, []).append(digests(values))
                combine(merged, data, collect=spill)
            counts = {name: count_distinct(arrays) for name, arrays in distinct.items()}
            merged.update(counts)
            with open(out, "w") as target:
                target.write("{" if merged else "{}")
                for number, (key, value) in enumerate(merged.items()):
                    target.write(f"{',' if number else ''}\n  {json.dumps(key)}: ")
                    if isinstance(value, _Spill):
                        value.write_to(target)
                    else:
                        target.write(_nested(value, 1))
                target.write("\n}" if merged else "")
        finally:
            for item in spills:
                item.handle.close()
    return {"reports": len(parts), "distinct": counts} if counts else {"reports": len(parts)}


def digests(values: Iterable) -> object:
    """The values (as text) as an array of 16-byte BLAKE2b digests: 16 bytes a value, not a Python string."""
    import hashlib

    import numpy as np

    joined = b"".join(hashlib.blake2b(str(v).encode(), digest_size=16).digest() for v in values)
    return np.frombuffer(joined, dtype="V16")


def count_distinct(arrays: list) -> int:
    """The number of distinct digests in ``arrays`` (of :func:`digests`)."""
    import numpy as np

    return int(len(np.unique(np.concatenate(arrays)))) if arrays else 0


def _nested(value, depth: int) -> str:
    """``value`` as ``json.dumps(..., indent=2)`` writes it ``depth`` levels deep."""
    return json.dumps(value, indent=2).replace("\n", "\n" + "  " * depth)


class _Spill:
    """A merged report's list, written to a file as it grows (its items as two levels deep) instead of held."""

    def __init__(self, path: Path):
        self.path, self.count = path, 0
        self.handle = open(path, "w")  # noqa: SIM115 - closed by merge_reports

    def extend(self, values: list) -> None:
        for value in values:
            self.handle.write(f"{',' if self.count else ''}\n    {_nested(value, 2)}")
            self.count += 1

    def write_to(self, target) -> None:
        self.handle.close()
        if not self.count:
            target.write("[]")
            return
        target.write("[")
        with open(self.path) as source:
            shutil.copyfileobj(source, target)
        target.write("\n  ]")


def combine(merged: dict, data: dict, collect=list) -> dict:
    """The one rule for the small results of shards (reports, returned values): lists concatenated (into what
    ``collect`` makes of the first one), numbers summed, other values those of the first shard."""
    for key, value in data.items():
        if key not in merged:
            merged[key] = collect(value) if isinstance(value, list) else value
        elif isinstance(value, list) and isinstance(merged[key], (list, _Spill)):
            merged[key].extend(value)
        elif _number(value) and _number(merged[key]):
            merged[key] += value
    return merged


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- a data-parallel task that runs every shard itself (engine spark: one Spark task per shard) ---------------


def spreads(spec, arguments: dict) -> bool:
    """The rule: a data-parallel component given ``shard_tables`` and no ``shard_index`` runs every shard
    (``core.runner.run_every_shard``) and writes what one unsharded task writes."""
    given = {name: arguments.get(name) for name in ("shard_tables", "shard_index")}
    return bool(spec.data_parallel) and given["shard_tables"] not in (None, "") and given["shard_index"] in (None, "")


def count(shard_tables: str | Path) -> int:
    """The number of shards in a folder of shard tables (named ``shard-00000.parquet`` on, none missing)."""
    folder = Path(shard_tables)
    names = sorted(p.name for p in folder.glob("shard-*.parquet")) if folder.is_dir() else []
    if not names or names != [table_name(i) for i in range(len(names))]:
        raise ClaimedError(f"shard_tables: {folder.name} is not a folder of shard tables shard-00000.parquet, ...")
    return len(names)
