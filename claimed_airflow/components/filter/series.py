"""Pick the series of a study that a model is for (modality, body part, SOP class, description)."""

from __future__ import annotations

import fnmatch
import logging

from claimed_airflow.core import InputPath, OutputPath, component, reject
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")


def _values(name: str, items: list[str] | None) -> set[str]:
    found = set()
    for item in items or []:
        text = str(item).strip().upper()
        if not text or not text.isprintable() or len(text) > 64:
            raise ClaimedError(f"{name}: {item!r} is not a DICOM value")
        found.add(text)
    return found


def _sop_class_name(uid: str) -> str:
    from pydicom.uid import UID

    name = UID(uid).name if uid else ""
    return name if name and name != uid else "unknown SOP class"


@component("filter", gate=True)
def series(
    metadata: InputPath,
    modalities: list[str] | None = None,
    body_parts: list[str] | None = None,
    sop_classes: list[str] | None = None,
    series_description: str = "",
    study_instance_uid: str = "",
    selected: OutputPath = "metadata.parquet",
) -> dict:
    """Keep the instances of the series that match every rule; nothing matching ends the run without a result.

    Instances without pixel data (an SR, a presentation state, ... : not an image) are set aside with their
    SOP class named. An empty rule matches anything; values compare without case. When no series matches,
    the gate is false: the tasks after it are skipped (nothing predicted, nothing stored) and ``reason``
    says in one line what the rules asked for and what the study holds. Truncated or unreadable instances
    were already set aside by ``input.dicom``.

    :param metadata: Metadata table of the study from ``input.dicom`` (Modality, BodyPartExamined, SOPClassUID, ...).
    :param modalities: Modalities the model is for, e.g. ``["CR", "DX"]``; empty: any.
    :param body_parts: BodyPartExamined values, e.g. ``["CHEST"]``; empty: any (a series without one matches
        only when this is empty).
    :param sop_classes: SOP Class UIDs, e.g. ``["1.2.840.10008.5.1.4.1.1.1"]`` (CR Image Storage); empty: any image.
    :param series_description: Shell pattern over SeriesDescription when the metadata has it, e.g. ``*PA*``.
    :param study_instance_uid: Keep only this study (instances of other studies, e.g. in a landing folder, are
        set aside); empty: every study of ``metadata``.
    :param selected: The rows of the selected series (same columns as ``metadata``).
    """
    import pandas as pd

    from claimed_airflow.core.tables import read_table, write_table

    wanted = {
        "Modality": _values("modalities", modalities),
        "BodyPartExamined": _values("body_parts", body_parts),
        "SOPClassUID": _values("sop_classes", sop_classes),
    }
    if len(series_description) > 64 or not series_description.isprintable():
        raise ClaimedError(f"series_description: {series_description!r} is not a pattern of at most 64 characters")
    table = read_table(metadata, name="metadata")
    for column in ("file", "StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID"):
        if column not in table.columns:
            raise ClaimedError(f"metadata: column {column!r} missing; expected the output of input.dicom")
    if study_instance_uid:
        other = table["StudyInstanceUID"].astype(str) != study_instance_uid
        for name in table.loc[other, "file"]:
            reject(str(name), "another study than study_instance_uid")
        table = table[~other]
    has_pixels = table["HasPixelData"].astype(bool) if "HasPixelData" in table.columns else pd.Series(True, table.index)
    for row in table[~has_pixels].to_dict("records"):
        uid = str(row["SOPClassUID"] or "")
        reject(str(row["file"]), f"not an image: SOP class {uid} ({_sop_class_name(uid)}) has no pixel data")
    images = table[has_pixels]
    keep = pd.Series(True, images.index)
    for column, values in wanted.items():
        if values:
            present = images[column] if column in images.columns else pd.Series("", images.index)
            keep &= present.fillna("").astype(str).str.strip().str.upper().isin(values)
    if series_description:
        present = images.get("SeriesDescription", pd.Series("", images.index)).fillna("").astype(str)
        keep &= present.map(lambda v: fnmatch.fnmatchcase(v.upper(), series_description.upper()))
    chosen = images[keep]
    write_table(chosen.reset_index(drop=True), selected)
    study_series = table.groupby("SeriesInstanceUID", dropna=False)
    if chosen.empty:
        rules = [f"{c} in {sorted(v)}" for c, v in wanted.items() if v]
        rules += [f"SeriesDescription like {series_description!r}"] if series_description else []
        held = sorted(
            {
                f"{row.get('Modality') or '?'}/{row.get('BodyPartExamined') or '-'}"
                + ("" if row.get("HasPixelData", True) else " (no image)")
                for row in table.to_dict("records")
            }
        )
        reason = (
            f"no series matches {' and '.join(rules) or 'an image'}: the study has {study_series.ngroups} "
            f"series ({', '.join(held)})"
        )
        log.warning("filter.series: %s; the run ends here, nothing is predicted or stored", reason)
        return {"blessed": False, "reason": reason, "series_selected": 0, "instances_selected": 0}
    log.info("filter.series: %d instance(s) of %d series selected", len(chosen), chosen["SeriesInstanceUID"].nunique())
    return {
        "blessed": True,
        "reason": "",
        "series_selected": int(chosen["SeriesInstanceUID"].nunique()),
        "instances_selected": len(chosen),
    }
