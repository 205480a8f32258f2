"""De-identify DICOM files after the DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
from pathlib import Path
from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, Progress, component, reject
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")

# PS3.15 Table E.1-1 comes from dicom-anonymizer (Kitware), which keeps the table of each edition of
# the standard; the newest edition it ships is used. Basic Profile actions: X remove, Z empty value,
# D dummy value, U new UID. Where the table allows several, the one that keeps the object valid
# whatever the attribute's type is used, as dicom-anonymizer does: X/Z -> Z, Z/D, X/D, X/Z/D -> D,
# X/Z/U* -> U (a sequence is kept and every UID in it replaced). Curves and overlays are masked tags.
_CATEGORIES = {
    "X_TAGS": "X",
    "Z_TAGS": "Z",
    "D_TAGS": "D",
    "U_TAGS": "U",
    "X_Z_TAGS": "Z",
    "Z_D_TAGS": "D",
    "X_D_TAGS": "D",
    "X_Z_D_TAGS": "D",
    "X_Z_U_STAR_TAGS": "U",
}


@functools.cache
def basic_profile() -> tuple[str, dict[int, str], list[tuple[int, int, int, int, str]]]:
    """(edition, {tag: action}, [(group, element, group mask, element mask, action)]) of Table E.1-1."""
    import importlib
    import pkgutil

    try:
        from dicomanonymizer import dicom_anonymization_databases as databases
    except ImportError:
        raise ClaimedError("deidentify: needs dicom-anonymizer (pip install dicom-anonymizer)") from None
    edition = max(module.name for module in pkgutil.iter_modules(databases.__path__))
    table = importlib.import_module(f"{databases.__name__}.{edition}")
    exact: dict[int, str] = {}
    masked = []
    for category, action in _CATEGORIES.items():
        for tag in getattr(table, category):
            if len(tag) == 4:
                masked.append((*tag, action))
            else:
                exact[(tag[0] << 16) | tag[1]] = action
    return edition.removeprefix("dicomfields_"), exact, masked


def profile_action(tag: int) -> str | None:
    """The Basic Profile action of ``tag`` (X, Z, D, U), or None when the profile keeps it."""
    _, exact, masked = basic_profile()
    if tag in exact:
        return exact[tag]
    group, element = tag >> 16, tag & 0xFFFF
    for g, e, group_mask, element_mask, action in masked:
        if group & group_mask == g and element & element_mask == e:
            return action
    return None


BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
RETAIN_CHARACTERISTICS_CODE = ("113108", "DCM", "Retain Patient Characteristics Option")
DUMMY = {"PN": "ANONYMIZED", "DA": "19000101", "TM": "000000", "DT": "19000101000000"}
UID_ROOT = "2.25."


def new_uid(uid: str, salt: bytes) -> str:
    """A new UID for ``uid``: ``2.25.<128-bit HMAC-SHA256 of the UID keyed by the salt>`` (same input, same output)."""
    digest = hmac.new(salt, uid.strip().encode(), hashlib.sha256).digest()
    return UID_ROOT + str(int.from_bytes(digest[:16], "big"))


def _registered(uid: str) -> bool:
    """True for UIDs defined by the standard (SOP classes, transfer syntaxes, coding schemes): kept."""
    from pydicom.uid import UID

    return UID(uid).name != uid


def age_years(ds) -> str | None:
    """PatientAge as ``NNNY`` (aggregated to ``090Y`` from 90 on), from PatientAge or birth/study dates."""
    from claimed_airflow.components.input.dicom import age_in_years

    years = age_in_years(str(ds.get("PatientAge") or "") or None)
    if years is None:
        birth, study = str(ds.get("PatientBirthDate") or ""), str(ds.get("StudyDate") or "")
        if len(birth) >= 8 and len(study) >= 8 and birth[:8].isdigit() and study[:8].isdigit():
            years = int(study[:4]) - int(birth[:4]) - (study[4:8] < birth[4:8])
    if years is None or years < 0:
        return None
    return f"{min(int(years), 90):03d}Y"


class Deidentifier:
    """Applies the basic profile to datasets; one instance per run keeps the UID mapping consistent."""

    def __init__(self, salt: bytes, keep_patient_sex: bool, keep_patient_age: bool):
        self.salt = salt
        self.keep = {"PatientSex"} if keep_patient_sex else set()
        self.keep_age = keep_patient_age
        self.uids: dict[str, str] = {}

    def uid(self, value: str) -> str:
        value = str(value).strip()
        if value not in self.uids:
            self.uids[value] = new_uid(value, self.salt)
        return self.uids[value]

    def apply(self, ds) -> dict:
        """De-identify ``ds`` in place; returns the actions taken (attribute keywords, counts)."""
        from pydicom.sequence import Sequence

        actions = {"removed": set(), "emptied": set(), "dummy": set(), "uids_replaced": 0, "private_removed": 0}
        age = age_years(ds) if self.keep_age else None
        private = [elem.tag for elem in _walk(ds) if elem.tag.is_private]
        actions["private_removed"] = len(private)
        ds.remove_private_tags()
        self._scrub(ds, actions, Sequence)
        if age is not None:
            ds.PatientAge = age
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            if "MediaStorageSOPInstanceUID" in meta:
                meta.MediaStorageSOPInstanceUID = self.uid(meta.MediaStorageSOPInstanceUID)
            for keyword in ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle", "PrivateInformation"):
                if keyword in meta:
                    delattr(meta, keyword)
                    actions["removed"].add(keyword)
        self._mark(ds)
        return {k: sorted(v) if isinstance(v, set) else v for k, v in actions.items()}

    def _scrub(self, ds, actions: dict, sequence_type) -> None:
        for tag in list(ds.keys()):
            elem = ds[tag]
            keyword = elem.keyword or f"({tag.group:04X},{tag.element:04X})"
            action = profile_action(int(tag))
            if keyword in self.keep or (keyword == "PatientAge" and self.keep_age):
                continue
            if action == "X":
                del ds[tag]
                actions["removed"].add(keyword)
                continue
            if action == "Z":
                if elem.VR == "SQ":
                    elem.value = sequence_type([])
                elif elem.value not in (None, "", b""):
                    elem.value = None if elem.VR in ("US", "SS", "UL", "SL", "FL", "FD") else ""
                actions["emptied"].add(keyword)
                continue
            if action == "D" and elem.VR != "SQ":
                elem.value = DUMMY.get(elem.VR, "ANONYMIZED" if elem.VR in ("LO", "SH", "LT", "ST", "UT") else "")
                actions["dummy"].add(keyword)
                continue
            if elem.VR == "SQ":
                for item in elem.value or []:
                    self._scrub(item, actions, sequence_type)
            elif elem.VR == "UI" and elem.value:
                values = elem.value if elem.VM > 1 else [elem.value]
                replaced = [v if _registered(str(v)) else self.uid(v) for v in values]
                actions["uids_replaced"] += sum(a != b for a, b in zip(values, replaced, strict=True))
                elem.value = replaced if elem.VM > 1 else replaced[0]

    def _mark(self, ds) -> None:
        from pydicom.dataset import Dataset

        ds.PatientIdentityRemoved = "YES"
        codes = [BASIC_PROFILE_CODE] + ([RETAIN_CHARACTERISTICS_CODE] if self.keep or self.keep_age else [])
        method = []
        for value, scheme, meaning in codes:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
            method.append(item)
        ds.DeidentificationMethod = f"PS3.15 {basic_profile()[0]} E.1 Basic Profile" + (
            "; retained: " + ", ".join(sorted(self.keep | ({"PatientAge"} if self.keep_age else set())))
            if self.keep or self.keep_age
            else ""
        )
        ds.DeidentificationMethodCodeSequence = method
        if "PatientName" not in ds:
            ds.PatientName = ""
        if "PatientID" not in ds:
            ds.PatientID = ""


def _walk(ds):
    for elem in ds:
        yield elem
        if elem.VR == "SQ":
            for item in elem.value or []:
                yield from _walk(item)


def read_salt(salt_connection: str | None, salt_env: str | None) -> tuple[bytes, str]:
    """The salt (bytes) and a description of where it came from (never the value itself)."""
    if salt_connection:
        try:
            from claimed_airflow.version_compat import BaseHook
        except ImportError:
            raise ClaimedError("salt_connection: Airflow is not installed here; use salt_env") from None
        try:
            connection = BaseHook.get_connection(salt_connection)
        except Exception as exc:  # noqa: BLE001 - a missing connection is the user's to fix
            reason = type(exc).__name__
            raise ClaimedError(f"salt_connection: connection {salt_connection!r} not found ({reason})") from None
        secret = connection.password or (connection.extra_dejson or {}).get("salt")
        if not secret:
            raise ClaimedError(f"salt_connection: connection {salt_connection!r} has no password or extra 'salt'")
        return str(secret).encode(), f"Airflow connection {salt_connection}"
    if salt_env:
        secret = os.environ.get(salt_env)
        if not secret:
            raise ClaimedError(f"salt_env: environment variable {salt_env} is not set or empty")
        return secret.encode(), f"environment variable {salt_env}"
    log.warning("deidentify: no salt_connection/salt_env given; new UIDs are random per run (not reproducible)")
    return os.urandom(32), "random per run"


@component("transform")
def deidentify(
    files: InputPath,
    metadata: InputPath | None = None,
    salt_connection: str | None = None,
    salt_env: str | None = None,
    keep_patient_sex: bool = False,
    keep_patient_age: bool = False,
    burned_in: Literal["report", "reject"] = "report",
    output: OutputPath = "files",
    table: OutputPath = "metadata.parquet",
    report: OutputPath = "deidentification.json",
) -> dict:
    """De-identify DICOM files after the PS3.15 Annex E Basic Application Level Confidentiality Profile.

    Applies every attribute of Table E.1-1 in the newest edition of the standard that dicom-anonymizer
    ships (2026c here): removes, empties or replaces with dummy values the identifying attributes
    (names, IDs, dates, institutions, physicians, comments, ...), curves, overlays and all private
    tags, and replaces every
    non-standard UID (Study/Series/SOP Instance, Frame of Reference, references in sequences, file
    meta) by ``2.25.<HMAC-SHA256(salt, UID)>``: the same input UID gets the same new UID, within a
    run and across runs with the same salt. The salt comes from an Airflow connection (password or
    extra ``salt``) or an environment variable and is never logged or recorded. Files are written
    flat as ``<new SOPInstanceUID>.dcm`` (original names may carry PHI); PatientIdentityRemoved and
    the De-identification Method (code 113100, plus 113108 when characteristics are kept) are set.
    Files flagged BurnedInAnnotation = YES (pixel text is not removed) are reported or set aside.

    :param files: Folder of DICOM files (e.g. the ``files`` output of ``input.dicom``), searched recursively.
    :param metadata: Optional metadata table from ``input.dicom``; rewritten with the new file names and UIDs.
    :param salt_connection: Airflow connection whose password (or extra ``salt``) keys the UID replacement.
    :param salt_env: Name of an environment variable holding the salt (when no connection is given).
    :param keep_patient_sex: Keep PatientSex (Retain Patient Characteristics Option) for fairness checks.
    :param keep_patient_age: Keep the age in years (PatientAge ``NNNY``, from 90 on ``090Y``) for fairness checks.
    :param burned_in: Files with BurnedInAnnotation = YES: ``report`` them (kept) or ``reject`` them (left out).
    :param output: Folder of de-identified files ``<new SOPInstanceUID>.dcm``.
    :param table: Metadata table (Parquet) of the de-identified files: file, UIDs and the kept metadata columns.
    :param report: JSON report: profile, options, salt source (not value), per-file actions, burned-in list.
    """
    import json

    import pydicom

    from claimed_airflow.components.input.dicom import has_dicm_magic
    from claimed_airflow.core.tables import read_table, write_table

    salt, salt_source = read_salt(salt_connection, salt_env)
    worker = Deidentifier(salt, keep_patient_sex, keep_patient_age)
    base = Path(files)
    candidates = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
    out = Path(output)
    out.mkdir(parents=True)
    done: dict[str, dict] = {}  # original relative name -> new row
    entries, burned, names = [], [], set()
    progress = Progress("deidentify", len(candidates))
    for number, path in enumerate(candidates, 1):
        progress.advance()
        relative = path.name if base.is_file() else path.relative_to(base).as_posix()
        # original names may carry PHI: the log and manifest name a file by position and keyed hash
        item = f"input file {number} of {len(candidates)} (key {new_uid(relative, salt)[5:17]})"
        if not has_dicm_magic(path):
            reject(item, "not a DICOM file (no DICM magic)")
            continue
        try:
            ds = pydicom.dcmread(path)
            flagged = str(ds.get("BurnedInAnnotation", "")).upper() == "YES"
            actions = worker.apply(ds)
        except Exception as exc:  # noqa: BLE001 - this file is set aside, the batch goes on
            reject(item, f"not de-identifiable ({type(exc).__name__})")
            continue
        name = f"{ds.get('SOPInstanceUID') or worker.uid(relative)}.dcm"
        if name in names:
            reject(item, f"duplicate SOPInstanceUID: the same instance as {name}, already written")
            continue
        names.add(name)
        if flagged:
            if burned_in == "reject":
                reject(name, "BurnedInAnnotation = YES: pixel data may show identifying text")
                continue
            log.warning("%s: BurnedInAnnotation = YES; pixel data may show identifying text (not removed)", name)
            burned.append(name)
        ds.save_as(out / name, enforce_file_format=True)
        entries.append({"file": name, "burned_in_annotation": flagged, **actions})
        done[relative] = {
            "file": name,
            "SOPInstanceUID": str(ds.get("SOPInstanceUID", "")),
            "StudyInstanceUID": str(ds.get("StudyInstanceUID", "")),
            "SeriesInstanceUID": str(ds.get("SeriesInstanceUID", "")),
        }
    if not entries:
        raise ClaimedError(f"files: no DICOM file could be de-identified in {files}")
    kept = {"PatientSex"} if keep_patient_sex else set()
    kept |= {"PatientAge"} if keep_patient_age else set()
    frame = _rewrite_metadata(read_table(metadata, name="metadata") if metadata else None, done, worker, kept)
    write_table(frame, table)
    summary = {
        "profile": "DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile",
        "profile_edition": basic_profile()[0],
        "options": {"keep_patient_sex": keep_patient_sex, "keep_patient_age": keep_patient_age, "burned_in": burned_in},
        "salt_source": salt_source,
        "uid_root": UID_ROOT,
        "files": entries,
        "burned_in_annotation": burned,
        "uids_mapped": len(worker.uids),
    }
    Path(report).write_text(json.dumps(summary, indent=2))
    return {"files_deidentified": len(entries), "burned_in_annotation": len(burned), "uids_mapped": len(worker.uids)}


def _new(worker: Deidentifier, value):
    return worker.uid(value) if isinstance(value, str) and value and not _registered(value) else value


_DROP = {"PatientName", "PatientID", "PatientBirthDate", "StudyDate", "AccessionNumber", "InstitutionName"}


def _rewrite_metadata(table, done: dict[str, dict], worker: Deidentifier, kept: set[str]):
    """The input metadata with new file names and UIDs, identifying columns dropped; or a new table."""
    import pandas as pd

    if table is None:
        return pd.DataFrame(list(done.values()))
    if "file" not in table.columns:
        raise ClaimedError("metadata: column 'file' missing; expected the output of input.dicom")
    table = table[table["file"].astype(str).isin(done)].copy()
    table["file"] = [done[str(f)]["file"] for f in table["file"]]
    for column in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if column in table.columns:
            table[column] = [_new(worker, v) for v in table[column]]
    identifying = [c for c in table.columns if (c in _DROP or _column_action(c) not in (None, "U")) and c not in kept]
    return table.drop(columns=identifying)


def _column_action(column: str) -> str | None:
    """The profile action of a metadata column named after a DICOM keyword (None for other columns)."""
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(column)
    return profile_action(tag) if tag is not None else None
