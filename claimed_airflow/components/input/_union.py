"""input.dicom's ``extra_sources``: more DICOM sources (each with its labels) read into the same table and folder.

Retraining on the union: the original set plus the studies radiologists labelled since (see
``docs/guides/monitoring.md``). Each extra source is read as ``input.dicom`` reads its ``source``; its
files go to ``<files>/_extra/<n>/`` and its rows get ``source`` n (the original's rows ``source`` 0).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from claimed_airflow.core import reject
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")
KEYS = ("source", "labels", "label_key")
MAX_SOURCES = 32
EXTRA_FOLDER = "_extra"
_COLUMN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
# one entry of extra_sources as a DAG Param's JSON schema (the flagship's and model_retraining's Params)
EXTRA_SOURCE_SCHEMA = {
    "type": "object",
    "properties": {
        "source": {"type": "string", "minLength": 1},
        "labels": {"type": "string", "minLength": 1},
        "label_key": {"type": "string", "pattern": f"^{_COLUMN.pattern}$"},
    },
    "required": ["source", "labels"],
    "additionalProperties": False,
}


def _show(value, limit: int = 80) -> str:
    text = str(value)
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ClaimedError(f"{where}: must be non-empty text, got {_show(value)}")
    if len(value) > 4096 or not value.isprintable():
        raise ClaimedError(f"{where}: {_show(value)} has control characters or is too long")
    return value.strip()


def check_extra_sources(extra_sources) -> list[dict[str, str]]:
    """``extra_sources`` checked (a list of ``{source, labels, label_key}``); a one-line error names the entry.

    ``source`` and ``labels`` are required (a folder, glob, URI or PACS query; a labels table); ``label_key``
    joins them (default ``SOPInstanceUID``, how ``input.labels`` keys radiologists' labels).
    """
    if extra_sources is None:
        return []
    if not isinstance(extra_sources, list):
        raise ClaimedError(f"extra_sources: must be a list of objects, got {_show(extra_sources)}")
    if len(extra_sources) > MAX_SOURCES:
        raise ClaimedError(f"extra_sources: at most {MAX_SOURCES} sources, got {len(extra_sources)}")
    checked = []
    for n, entry in enumerate(extra_sources):
        where = f"extra_sources[{n}]"
        if not isinstance(entry, dict):
            raise ClaimedError(f"{where}: must be an object {{source, labels, label_key}}, got {_show(entry)}")
        unknown = sorted(_show(key) for key in entry if key not in KEYS)
        if unknown:
            raise ClaimedError(f"{where}: unknown key(s) {', '.join(unknown)} (expected source, labels, label_key)")
        key = entry.get("label_key") or "SOPInstanceUID"
        if not isinstance(key, str) or not _COLUMN.fullmatch(key):
            raise ClaimedError(f"{where}.label_key: {_show(key)} is not a column name")
        source, labels = _text(entry.get("source"), f"{where}.source"), _text(entry.get("labels"), f"{where}.labels")
        checked.append({"source": source, "labels": labels, "label_key": key})
    return checked


def _link_tree(source: Path, target: Path) -> None:
    """``target`` as a copy of folder ``source``: hard links where the filesystem allows, else copies."""

    def link(src: str, dst: str) -> None:
        try:
            Path(dst).hardlink_to(src)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link, dirs_exist_ok=True)


def union(
    read: dict,
    extras: list[dict[str, str]],
    read_one: Callable[[str, str, str, str, str], dict],
    duplicates: str,
    metadata: str,
    files: str,
    shards: int = 1,
    shard_tables: str | None = None,
    shard_bytes: int | None = None,
) -> dict:
    """Append the ``extras`` to the table ``metadata`` and the folder ``files`` that input.dicom wrote (``read``:
    what it returned); ``read_one(source, labels, label_key, metadata, files)`` reads one source as input.dicom
    does. With ``shard_tables``, the union is cut into shard tables there (``shards`` or ``shard_bytes``).

    A SOPInstanceUID already read (from the original or an earlier extra source) is set aside
    (``duplicates`` reject) or kept with a warning (keep).
    """
    import pandas as pd

    from claimed_airflow.core import storage
    from claimed_airflow.core.tables import read_table, write_table

    table = read_table(metadata, name="metadata")
    if table["file"].astype(str).str.startswith(f"{EXTRA_FOLDER}/").any():
        raise ClaimedError(f"source: a file of the source is under {EXTRA_FOLDER}/, the folder of extra_sources")
    table["source"] = 0
    parts, counts = [table], {name: read.get(name, 0) for name in ("files_read", "files_rejected", "duplicates")}
    seen = set(table["SOPInstanceUID"].astype(str))
    with storage.work_dir() as tmp:
        for n, extra in enumerate(extras, start=1):
            where = f"extra_sources[{n - 1}]"
            work = Path(tmp) / str(n)
            read_to, part_table = work / "files", str(work / "metadata.parquet")
            labels = storage.stage_input(f"{where}.labels", extra["labels"], work)
            source = storage.stage_input(f"{where}.source", extra["source"], work)  # a PACS query as it is
            result = read_one(source, labels, extra["label_key"], part_table, str(read_to))
            for name in counts:
                counts[name] += result.get(name, 0)
            part = read_table(part_table, name=f"{where}.source")
            folder = f"{EXTRA_FOLDER}/{n}"
            again = part["SOPInstanceUID"].astype(str).isin(seen)
            for file, uid in part.loc[again, ["file", "SOPInstanceUID"]].itertuples(index=False):
                counts["duplicates"] += 1
                reason = f"duplicate SOPInstanceUID {uid} (already read from an earlier source)"
                if duplicates == "reject":
                    counts["files_rejected"] += 1
                    reject(f"{folder}/{file}", reason)
                    (read_to / file).unlink(missing_ok=True)
                else:
                    log.warning("%s/%s: %s; kept (duplicates=keep)", folder, file, reason)
            if duplicates == "reject":
                part = part[~again]
            seen.update(part["SOPInstanceUID"].astype(str))
            parts.append(part.assign(file=folder + "/" + part["file"].astype(str), source=n))
            _link_tree(read_to, Path(files) / folder)
            log.info("input.dicom: %s: %d file(s) added", where, len(part))
    union_table = pd.concat(parts, ignore_index=True)
    write_table(union_table, metadata)
    sizes = union_table.groupby("source").size()
    counts["files_read"] = len(union_table)
    extra = {"sources": len(parts), "files_per_source": [int(sizes.get(n, 0)) for n in range(len(parts))]}
    if shard_tables is not None:
        from claimed_airflow.core.sharding import write_tables

        names = list(union_table["file"].drop_duplicates())
        extra["shard_index"] = write_tables(names, shards, shard_tables, shard_bytes, files, rows=union_table)
    return {**read, **counts, **extra}
