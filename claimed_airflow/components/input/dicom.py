"""Read a folder, glob, s3:// prefix, DICOMDIR or single DICOM file into a metadata table and a folder of files."""

from __future__ import annotations

import glob
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, Progress, component, reject
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.tables import require_columns

log = logging.getLogger("claimed_airflow")
TAGS = (
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPClassUID",
    "Modality",
    "BodyPartExamined",
    "PatientSex",
    "Rows",
    "Columns",
    "PhotometricInterpretation",
    "BurnedInAnnotation",
    "Manufacturer",  # with PixelSpacing: the header mix model monitoring compares with the reference profile
    "PixelSpacing",
)
_AGE_UNITS = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}
COLUMNS = ("file", *TAGS, "PatientAge", "NumberOfFrames", "TransferSyntaxUID", "HasPixelData")  # read_row's
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # the SOP class of a DICOMDIR
MAGIC_OFFSET = 128


def has_dicm_magic(path: Path) -> bool:
    """True when ``path`` starts with the 128-byte preamble followed by ``DICM`` (a DICOM Part 10 file)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(MAGIC_OFFSET + 4)
    except OSError:
        return False
    return head[MAGIC_OFFSET:] == b"DICM"


def is_dicomdir(path: Path) -> bool:
    import pydicom

    if path.name.upper() != "DICOMDIR" and not has_dicm_magic(path):
        return False
    try:
        meta = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # noqa: BLE001 - not readable: it is not a DICOMDIR
        return False
    return str(meta.file_meta.get("MediaStorageSOPClassUID", "")) == MEDIA_STORAGE_DIRECTORY


def dicomdir_files(path: Path) -> list[Path]:
    """The files a DICOMDIR references (its image, SR, ... records), in record order."""
    from pydicom.fileset import FileSet

    try:
        fileset = FileSet(path)
    except Exception as exc:  # noqa: BLE001 - a broken DICOMDIR is the user's input to fix
        raise ClaimedError(f"source: DICOMDIR {path.name} cannot be read ({type(exc).__name__}: {exc})") from None
    return [Path(instance.path) for instance in fileset]


def discover(source: str) -> tuple[Path, list[Path]]:
    """The base folder and the sorted candidate files of a folder, glob, DICOMDIR or single file.

    A folder is searched recursively; hidden files are skipped. DICOMDIR files met there are not
    candidates themselves (their referenced files are in the folder anyway).
    """
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
        return path, [p for p in files if not (p.name.upper() == "DICOMDIR" and is_dicomdir(p))]
    if path.is_file():
        if is_dicomdir(path):
            return path.parent, dicomdir_files(path)
        return path.parent, [path]
    matches = sorted(Path(p) for p in glob.glob(source, recursive=True) if os.path.isfile(p))
    base = Path(os.path.commonpath([str(p.parent) for p in matches])) if matches else Path(".")
    return base, matches


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


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


def read_row(path: Path, relative: str) -> dict:
    """The metadata row of one DICOM file; raises on anything that is not a readable DICOM instance."""
    import pydicom

    if not has_dicm_magic(path):
        raise ValueError("not a DICOM file (no DICM magic after the 128-byte preamble)")
    ds = pydicom.dcmread(path)
    if str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == MEDIA_STORAGE_DIRECTORY:
        raise ValueError("a DICOMDIR (directory), not an instance")
    if not ds.get("SOPInstanceUID"):
        raise ValueError("SOPInstanceUID missing")
    check_pixel_data(ds)
    row = {"file": relative, **{tag: _text(ds.get(tag)) for tag in TAGS}}  # in the order of COLUMNS
    row["PatientAge"] = age_in_years(_text(ds.get("PatientAge")))
    try:
        row["NumberOfFrames"] = max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        raise ValueError(f"NumberOfFrames not a number: {ds.get('NumberOfFrames')!r}") from None
    row["TransferSyntaxUID"] = str(ds.file_meta.get("TransferSyntaxUID", ""))
    row["HasPixelData"] = "PixelData" in ds
    return row


@component("input")
def dicom(
    source: InputPath,
    labels: InputPath | None = None,
    label_key: str = "file",
    label_column: str = "label",
    extra_sources: list[dict] | None = None,
    duplicates: Literal["reject", "keep"] = "reject",
    max_rejected: int | None = None,
    shards: int = 1,
    shard_bytes: str | None = None,
    metadata: OutputPath = "metadata.parquet",
    files: OutputPath = "files",
    shard_tables: OutputPath = "shards",
) -> dict:
    """Read DICOM files into a metadata table (one row per SOP instance) plus a folder of the readable files.

    Sources: a local folder (searched recursively), a glob, an ``s3://`` (or other fsspec) prefix
    staged by the runner, a DICOMDIR (its referenced files) or a single file. Files are recognised by
    the ``DICM`` magic after the 128-byte preamble, not by their suffix. Each row carries file,
    StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, SOPClassUID, Modality, BodyPartExamined,
    PatientSex, PatientAge (years), Rows, Columns, PhotometricInterpretation, TransferSyntaxUID,
    NumberOfFrames, HasPixelData, BurnedInAnnotation and, with a labels table, ``label``. Files that
    are not readable DICOM and repeated SOPInstanceUIDs (the first file is kept) are reported by
    name, listed in the run manifest and left out; the rest of the batch goes on.

    A PACS query is a source too: ``dicomweb://<connection>?modality=CR&study_date=20200101-20201231``
    (DICOMweb: QIDO-RS search, WADO-RS retrieve), ``dicomweb+https://host/dicom-web?...`` (no
    connection) or ``dicom://<connection>?...`` (DIMSE: C-FIND, C-GET); see input.dicomweb. Files from
    a PACS are named by a hash of their SOPInstanceUID.

    ``shards``: the readable files, in the table's order, are cut into that many shards by count, or
    with ``shard_bytes`` into contiguous shards of at most that many bytes (``shard_tables``; the
    returned ``shard_index`` is the list a DAG expands a data-parallel component over, see
    ``transform.merge_shards``). The same input gives the same shards.

    :param source: Folder (searched recursively), glob pattern, URI prefix, DICOMDIR, single DICOM file, or a
        PACS query URI (dicomweb://, dicom://).
    :param labels: Optional CSV/Parquet table with labels, joined to the metadata on ``label_key``.
    :param label_key: Column present in both the metadata and the labels table (e.g. file, SOPInstanceUID).
    :param label_column: Column of the labels table copied into the metadata as ``label``.
    :param extra_sources: More sources read into the same table and folder (retraining on the union):
        ``[{"source": ..., "labels": ..., "label_key": "SOPInstanceUID"}]``; their files go to ``_extra/<n>/``,
        each row's ``source`` column is its source's number (0: ``source``); a SOPInstanceUID already read is a
        duplicate.
    :param duplicates: A file whose SOPInstanceUID was already seen: ``reject`` sets it aside (the first file is
        kept), ``keep`` keeps it with a warning (e.g. one instance in several transfer syntaxes).
    :param max_rejected: Fail the task when more files than this are set aside (default: never, unless all).
    :param shards: Cut the readable files into this many shards by count (1: one shard, all files).
    :param shard_bytes: Cut them instead into shards of at most this many bytes of files, e.g. 512MB or 2GiB (a
        larger file is a shard alone; the number of shards follows from the data). Not with ``shards``.
    :param metadata: Parquet table: file, tags (PatientSex, PatientAge in years, Modality, ...), label.
    :param files: Folder with the readable DICOM files, named as in the ``file`` column.
    :param shard_tables: Folder of shard tables ``shard-NNNNN.parquet``, one per shard: the metadata rows of its
        files, column ``file`` first.
    """
    from claimed_airflow.components import _pacs
    from claimed_airflow.components.input import _union
    from claimed_airflow.core.sharding import check_cut

    limit = check_cut(shards, shard_bytes)
    extras = _union.check_extra_sources(extra_sources)  # hostile until checked: before anything is read
    cut = {"shards": shards, "shard_bytes": limit, "shard_tables": shard_tables}
    first = {**cut, "shard_tables": None} if extras else cut  # with extra sources, the union is cut
    if _pacs.is_pacs_uri(source):
        read = from_pacs(source, labels, label_key, label_column, max_rejected, metadata, files, **first)
    else:
        base, candidates = discover(source)
        read = read_files(
            base, candidates, source, labels, label_key, label_column, duplicates, max_rejected, metadata, files,
            **first,
        )  # fmt: skip
    if not extras:
        return read

    def read_one(source: str, labels: str, key: str, table: str, folder: str) -> dict:
        if _pacs.is_pacs_uri(source):
            return from_pacs(source, labels, key, label_column, max_rejected, table, folder)
        base, candidates = discover(source)
        return read_files(base, candidates, source, labels, key, label_column, duplicates, max_rejected, table, folder)

    return _union.union(read, extras, read_one, duplicates, metadata, files, **cut)


def read_files(
    base: Path,
    candidates: Iterable[Path],
    source: str,
    labels: str | None,
    label_key: str,
    label_column: str,
    duplicates: str,
    max_rejected: int | None,
    metadata: str,
    files: str,
    transfer: Callable[[Path, Path], object] = shutil.copy2,
    total: int | None = None,
    order: Callable[[dict], object] | None = None,
    shards: int = 1,
    shard_tables: str | None = None,
    shard_bytes: int | None = None,
    empty_ok: bool = False,
) -> dict:
    """input.dicom's reading: a metadata row per readable file, the file put into ``files`` by ``transfer``.

    Unreadable files and repeated SOPInstanceUIDs are reported (``reject``) and left out. With
    ``shard_tables`` the rows' files are cut into shard tables there (``shards`` or ``shard_bytes``). No
    readable file is an error, unless ``empty_ok`` (one shard of a cohort): then the table has no rows.
    """
    import pandas as pd

    from claimed_airflow.core.tables import read_table, write_table

    label_table = read_table(labels, name="labels") if labels is not None else None
    rows: list[dict] = []
    seen: dict[str, str] = {}
    rejected = repeated = 0
    out = Path(files)
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress("input.dicom", len(candidates) if total is None else total)

    def set_aside(item: str, reason: str) -> None:
        nonlocal rejected
        rejected += 1
        reject(item, reason)
        if max_rejected is not None and rejected > max_rejected:
            raise ClaimedError(f"max_rejected: more than {max_rejected} file(s) set aside (see the task log)")

    for path in candidates:
        progress.advance()
        try:
            relative = path.relative_to(base).as_posix()
        except ValueError:  # a DICOMDIR record pointing outside its folder
            set_aside(str(path), "outside the source folder")
            continue
        try:
            row = read_row(path, relative)
        except Exception as exc:  # noqa: BLE001 - whatever the reader meets, this file is set aside
            set_aside(relative, f"not a readable DICOM file ({type(exc).__name__}: {exc})")
            continue
        uid = row["SOPInstanceUID"]
        if uid in seen:
            repeated += 1
            reason = f"duplicate SOPInstanceUID {uid} (first seen in {seen[uid]})"
            if duplicates == "reject":
                set_aside(relative, reason)
                continue
            log.warning("%s: %s; kept (duplicates=keep)", relative, reason)
        seen.setdefault(uid, relative)
        rows.append(row)
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        transfer(path, target)
    if not rows and not empty_ok:
        raise ClaimedError(f"source: no readable DICOM file in {source} ({progress.done} file(s) checked)")
    if order is not None:
        rows.sort(key=order)
    table = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("Rows", "Columns"):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("Int64")
    if label_table is not None:
        table = _join_labels(table, label_table, label_key, label_column)
    write_table(table, metadata)
    result = {"files_read": len(rows), "files_rejected": rejected, "duplicates": repeated}
    if shard_tables is not None:
        from claimed_airflow.core.sharding import write_tables

        names = list(table["file"].drop_duplicates())
        result["shard_index"] = write_tables(names, shards, shard_tables, shard_bytes, files, rows=table)
    return result


def from_pacs(
    source: str,
    labels: str | None,
    label_key: str,
    label_column: str,
    max_rejected: int | None,
    metadata: str,
    files: str,
    shards: int = 1,
    shard_tables: str | None = None,
    shard_bytes: int | None = None,
) -> dict:
    """input.dicom of a PACS query URI (``dicomweb://<conn>?modality=CR``, ``dicom://<conn>?...``)."""
    from claimed_airflow.components import _pacs

    protocol, conn_id, where, query, options = _pacs.parse_source(source)
    if protocol == "dicomweb":
        server = _pacs.web_server(conn_id, where)
    else:
        server = _pacs.dimse_server(conn_id, where, options.get("calling_ae_title"))
    try:
        concurrency = int(options.get("concurrency") or 8)
    except ValueError:
        raise ClaimedError(f"source: concurrency={options['concurrency']!r} is not a number") from None
    transfer_syntax = options.get("transfer_syntax") or "*"
    return read_pacs(
        protocol,
        server,
        query,
        labels,
        label_key,
        label_column,
        max_rejected,
        metadata,
        files,
        concurrency,
        transfer_syntax,
        shards,
        shard_tables,
        shard_bytes,
    )


def read_pacs(
    protocol: str,
    server,
    query,
    labels: str | None,
    label_key: str,
    label_column: str,
    max_rejected: int | None,
    metadata: str,
    files: str,
    concurrency: int = 8,
    transfer_syntax: str = "*",
    shards: int = 1,
    shard_tables: str | None = None,
    shard_bytes: int | None = None,
) -> dict:
    """Search a PACS, fetch the matching instances, then read them as input.dicom reads files.

    The instances are fetched into a folder kept between attempts of the task (a retry fetches only
    what is missing), read like files, then moved into ``files`` as ``<hash of SOPInstanceUID>.dcm``.
    """
    from claimed_airflow.components import _pacs
    from claimed_airflow.core.identifying import redact_query

    if concurrency < 1:
        raise ClaimedError(f"concurrency: must be positive, got {concurrency}")
    folder, instances, fetched, reused = _pacs.retrieve(protocol, server, query, concurrency, transfer_syntax)
    where = f"{server.name} ({query.level} level, {redact_query(query.filters) or 'no filter'})"
    position = {instance.file: n for n, instance in enumerate(instances)}
    result = read_files(
        folder,
        fetched,  # read while the next instances arrive
        where,
        labels,
        label_key,
        label_column,
        "reject",
        max_rejected,
        metadata,
        files,
        _link,
        total=len(instances),
        order=lambda row: position.get(row["file"], len(position)),  # rows in the search's order
        shards=shards,
        shard_tables=shard_tables,
        shard_bytes=shard_bytes,
    )
    shutil.rmtree(folder, ignore_errors=True)  # all in files now; after a failure above it stays for the retry
    return {**result, "instances_found": len(instances), "instances_reused": reused, "server": server.name}


def _link(source: Path, target: Path) -> None:
    """A hard link (the fetched file stays for a retry until the whole read succeeded), else a copy."""
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not supported
        shutil.copyfile(source, target)


def _text(value) -> str | None:
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):  # multi-valued (PixelSpacing): 0.1\\0.1
        value = "\\".join(str(item) for item in value)
    return None if value is None or value == "" else str(value)


def _join_labels(table, labels, key: str, column: str):
    require_columns(table, [key], param="label_key", where="the DICOM metadata")
    require_columns(labels, [key], param="label_key", where="the labels table")
    require_columns(labels, [column], param="label_column", where="the labels table")
    keys = labels[key].astype(str)
    mapping = labels.assign(**{key: keys}).drop_duplicates(key).set_index(key)[column]
    table["label"] = table[key].astype(str).map(mapping)
    for value in table.loc[table["label"].isna(), key]:
        reject(str(value), f"no label in the labels table for {key}={value}")
    return table
