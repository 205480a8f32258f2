"""Read radiologists' labels from IBM Cloud Annotations, Label Studio or CSV exports into a labels table."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError

#: A class label: it becomes a folder name downstream (transform.dicom_to_images), so letters, digits,
#: space, ``_ . + -``, starting with a letter or digit (``_`` starts the folders that are not classes).
LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 _.+-]{0,62}[A-Za-z0-9_+-])?")
UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
NAME_FIELDS = ("file", "image")  # an image named by its file: resolved through ``metadata``
KEY_FIELDS = ("SOPInstanceUID", *NAME_FIELDS)


def show(value, limit: int = 80) -> str:
    """A value from a file for an error message: quoted, control characters escaped, cut at ``limit``."""
    text = str(value)
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def _id(value) -> str:
    return str(value) if isinstance(value, int) else show(value)


def check_label(value, where: str) -> str:
    """``value`` if it is an allowed class label (see :data:`LABEL`), else a ClaimedError naming ``where``."""
    if not isinstance(value, str):
        raise ClaimedError(f"{where}: label must be text, got {type(value).__name__}")
    if not LABEL.fullmatch(value):
        raise ClaimedError(
            f"{where}: label {show(value)} not allowed (1-64 letters, digits, space, _ . + -; "
            "starting with a letter or digit)"
        )
    return value


def _key_value(field: str, value, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ClaimedError(f"{where}: {field} must be non-empty text, got {show(value)}")
    if field == "SOPInstanceUID" and (len(value) > 64 or not UID.fullmatch(value)):
        raise ClaimedError(f"{where}: SOPInstanceUID {show(value)} is not a DICOM UID")
    if field != "SOPInstanceUID" and (len(value) > 1024 or not value.isprintable()):
        raise ClaimedError(f"{where}: {field} {show(value)} has control characters or is too long")
    return value


def image_name(url: str) -> str:
    """The image file an image URL names: its last path segment, or Label Studio's local-files ``?d=`` path."""
    parts = urlsplit(url)
    local = parse_qs(parts.query).get("d")
    return unquote(local[0] if local else parts.path).rstrip("/").rsplit("/", 1)[-1]


def _cloud_annotations(data, name: str) -> Iterator[tuple[str, str, str, str | None]]:
    """(where, field, value, label or None) of an IBM Cloud Annotations ``_annotations.json``."""
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), dict):
        raise ClaimedError(f"{name}: not a Cloud Annotations export (no 'annotations' object)")
    kind = data.get("type", "classification")
    if kind != "classification":
        raise ClaimedError(f"{name}: type {show(kind)}: only a classification project labels whole images")
    declared = data.get("labels")
    if declared is not None and not (isinstance(declared, list) and all(isinstance(x, str) for x in declared)):
        raise ClaimedError(f"{name}: 'labels' must be a list of text")
    for image, items in data["annotations"].items():
        where = f"{name}: annotations[{show(image)}]"
        if not isinstance(items, list):
            raise ClaimedError(f"{where}: must be a list of annotations, got {type(items).__name__}")
        found = set()
        for n, item in enumerate(items):
            if not isinstance(item, dict) or "label" not in item:
                raise ClaimedError(f"{where}[{n}]: 'label' missing")
            label = check_label(item["label"], f"{where}[{n}]")
            if declared is not None and label not in declared:
                raise ClaimedError(f"{where}[{n}]: label {show(label)} is not among the project's labels")
            found.add(label)
        if len(found) > 1:
            raise ClaimedError(f"{where}: conflicting labels {', '.join(sorted(found))} for one image")
        yield where, "image", image, found.pop() if found else None


def _label_studio(data, name: str, from_name: str) -> Iterator[tuple[str, str, str, str | None]]:
    """(where, field, value, label or None) of a Label Studio JSON export (a list of tasks)."""
    if not isinstance(data, list):
        raise ClaimedError(f"{name}: a Label Studio JSON export is a list of tasks, got {type(data).__name__}")
    for n, task in enumerate(data):
        where = f"{name}: task {n}"
        if not isinstance(task, dict):
            raise ClaimedError(f"{where}: must be an object, got {type(task).__name__}")
        if "id" in task:
            where += f" (id {_id(task['id'])})"
        fields = task.get("data")
        annotations = task.get("annotations", [])
        if not isinstance(fields, dict):
            raise ClaimedError(f"{where}: 'data' missing or not an object")
        if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
            raise ClaimedError(f"{where}: 'annotations' must be a list of objects")
        kept = [a for a in annotations if not a.get("was_cancelled")]
        kept = [a for a in kept if a.get("ground_truth")] or kept  # a reviewer's ground truth decides
        found: dict[str, str] = {}
        for a in kept:
            place = f"{where} annotation {_id(a.get('id', kept.index(a)))}"
            for label in _choices(a, place, from_name):
                found.setdefault(label, place)
        if len(found) > 1:
            raise ClaimedError(f"{where}: conflicting labels {', '.join(sorted(found))} (mark one ground truth)")
        field = next((f for f in ("SOPInstanceUID", "file") if f in fields), None)  # data.image is a URL
        if field is not None:
            yield where, field, fields[field], next(iter(found), None)
        elif isinstance(fields.get("image"), str):
            yield where, "image", image_name(fields["image"]), next(iter(found), None)
        else:
            raise ClaimedError(f"{where}: 'data' has no SOPInstanceUID, file or image URL")


def _choices(annotation: dict, where: str, from_name: str) -> list[str]:
    result = annotation.get("result")
    if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
        raise ClaimedError(f"{where}: 'result' missing or not a list of objects")
    picked = [r for r in result if r.get("type") == "choices" and (not from_name or r.get("from_name") == from_name)]
    if len({r.get("from_name") for r in picked}) > 1:
        raise ClaimedError(f"{where}: several Choices controls; name the one with from_name")
    labels = []
    for r in picked:
        choices = r.get("value", {}).get("choices") if isinstance(r.get("value"), dict) else None
        if not isinstance(choices, list) or len(choices) != 1:
            raise ClaimedError(f"{where}: value.choices must be a list of one label, got {show(choices)}")
        labels.append(check_label(choices[0], where))
    return labels


def _csv(path: Path, name: str, label_column: str) -> Iterator[tuple[str, str, str, str | None]]:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise ClaimedError(f"{name}: not a readable CSV ({' '.join(str(exc).split())})") from None
    field = next((f for f in KEY_FIELDS if f in frame.columns), None)
    if field is None or label_column not in frame.columns:
        have = ", ".join(show(c, 40) for c in frame.columns[:20])
        raise ClaimedError(f"{name}: needs a column {label_column!r} and one of {', '.join(KEY_FIELDS)} (has {have})")
    for n, (value, label) in enumerate(zip(frame[field], frame[label_column], strict=True)):
        where = f"{name}: line {n + 2}"
        yield where, field, value, check_label(label, where) if label else None


class _Names:
    """Image names (``file``, ``image``, their base names, the PNG name transform.dicom_to_images gives a file)
    of a metadata table -> its rows' (SOPInstanceUID, file)."""

    def __init__(self, metadata: str):
        from claimed_airflow.components.transform.dicom_to_images import image_stem
        from claimed_airflow.core.tables import read_table, require_columns

        table = read_table(metadata, name="metadata")
        require_columns(table, ["SOPInstanceUID", "file"], param="metadata")
        self.uids: dict[str, tuple[str, str]] = {}
        self.names: dict[str, set[tuple[str, str]]] = {}
        for row in table.astype({"SOPInstanceUID": str, "file": str}).to_dict("records"):
            ids = (row["SOPInstanceUID"], row["file"])
            self.uids.setdefault(ids[0], ids)
            names = {row["file"], PurePosixPath(row["file"]).name, image_stem(row["file"]) + ".png"}
            if isinstance(row.get("image"), str):
                names |= {row["image"], PurePosixPath(row["image"]).name}
            for n in names:
                self.names.setdefault(n, set()).add(ids)

    def find(self, field: str, value: str, where: str) -> tuple[str, str]:
        if field == "SOPInstanceUID":
            ids = self.uids.get(value)
        else:
            found = self.names.get(value, set())
            if len(found) > 1:
                raise ClaimedError(f"{where}: {field} {show(value)} names {len(found)} images of the metadata")
            ids = next(iter(found), None)
        if ids is None:
            raise ClaimedError(f"{where}: unknown image ({field} {show(value)} is not in the metadata)")
        return ids


def _read(path: Path, tool: str, label_column: str, from_name: str) -> tuple[str, list]:
    name = path.name
    if tool == "auto":
        tool = "csv" if path.suffix.lower() in (".csv", ".txt") else "json"
    if tool == "csv":
        return tool, list(_csv(path, name, label_column))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClaimedError(f"{name}: not JSON ({' '.join(str(exc).split())})") from None
    if tool == "json":
        if not isinstance(data, list) and not (isinstance(data, dict) and "annotations" in data):
            raise ClaimedError(
                f"{name}: neither a Label Studio export (a list of tasks) nor a Cloud Annotations one ('annotations')"
            )
        tool = "label_studio" if isinstance(data, list) else "cloud_annotations"
    if tool == "label_studio":
        return tool, list(_label_studio(data, name, from_name))
    return tool, list(_cloud_annotations(data, name))


@component("input")
def labels(
    source: InputPath,
    tool: Literal["auto", "cloud_annotations", "label_studio", "csv"] = "auto",
    label_key: Literal["SOPInstanceUID", "file"] = "SOPInstanceUID",
    metadata: InputPath | None = None,
    label_column: str = "label",
    from_name: str = "",
    labels: OutputPath = "labels.csv",
) -> dict:
    """Read radiologists' labels from a labelling tool's export into the labels table of input.dicom.

    Exports: IBM Cloud Annotations' ``_annotations.json`` (a classification project: ``annotations``
    maps each image name to ``[{"label": ...}]``), a Label Studio JSON export (a list of tasks; the
    single choice of each task's annotations, the one marked ground truth if any, cancelled ones left
    out; the image is the task's ``data.SOPInstanceUID``, ``data.file`` or the file named by
    ``data.image``, as output.label_studio_tasks writes them) or a CSV (``label_column`` and one of
    SOPInstanceUID, file, image). ``auto`` tells them by suffix (``.csv``) and JSON shape. Image names
    (files, PNG names) are looked up in ``metadata``: its ``file``, ``image``, their base names and the
    PNG name transform.dicom_to_images gives each file. Images without a label are left out; the same
    label twice is kept once. A malformed entry, an unknown image (with ``metadata``), a label outside
    letters, digits, space and ``_ . + -`` (labels become folder names), or two labels for one image
    fail the task with one line naming the file and the entry.

    :param source: The export: ``_annotations.json``, Label Studio JSON export or CSV.
    :param tool: The export's tool: auto, cloud_annotations, label_studio or csv.
    :param label_key: Key column of the table written: SOPInstanceUID (the default, a PACS source) or file
        (input.dicom's file column); give it as input.dicom's label_key.
    :param metadata: Table of the known images (input.dicom's metadata, transform.dicom_to_images' index.csv or
        predict.images' predictions: columns SOPInstanceUID, file and optionally image); needed to key images
        named by file to SOPInstanceUID. Entries for images not in it are refused.
    :param label_column: Column of a CSV export that holds the label.
    :param from_name: Name of the Label Studio Choices control to read; empty: the only one there is.
    :param labels: CSV with columns ``label_key`` and label, one row per labelled image.
    """
    import pandas as pd

    from claimed_airflow.core.tables import write_table

    path = Path(source)
    tool, entries = _read(path, tool, label_column, from_name)
    names = _Names(metadata) if metadata is not None else None
    table: dict[str, tuple[str, str]] = {}
    duplicates = unlabelled = 0
    for where, field, value, label in entries:
        value = _key_value(field, value, where)
        if label is None:
            unlabelled += 1
            continue
        if names is not None:
            uid, file = names.find(field, value, where)
            key = uid if label_key == "SOPInstanceUID" else file
        elif field == label_key or (label_key == "file" and field in NAME_FIELDS):
            key = value
        else:
            raise ClaimedError(f"{where}: {field} given; metadata is needed to find its {label_key}")
        if key in table:
            previous, place = table[key]
            if previous != label:
                raise ClaimedError(
                    f"{where}: label {show(label)} conflicts with {show(previous)} for {label_key} {show(key)}"
                    f" ({place.split(': ', 1)[1]})"
                )
            duplicates += 1
            continue
        table[key] = (label, where)
    if not table:
        raise ClaimedError(f"{path.name}: no labelled image ({len(entries)} entries, {unlabelled} without a label)")
    frame = pd.DataFrame({label_key: list(table), "label": [label for label, _ in table.values()]})
    write_table(frame, labels)
    return {"labelled": len(frame), "duplicates": duplicates, "unlabelled": unlabelled, "tool": tool}
