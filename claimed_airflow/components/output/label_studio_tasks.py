"""Write a Label Studio import file of the predictions most worth a radiologist's time.

The labelling config the tasks expect (one Choice per class of the model; the defaults of from_name and
to_name name the controls)::

    <View>
      <Image name="image" value="$image"/>
      <Choices name="label" toName="image" choice="single" showInline="true">
        <Choice value="NORMAL"/>
        <Choice value="PNEUMONIA"/>
      </Choices>
    </View>
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit

from claimed_airflow.core import InputPath, OutputPath, component, reject
from claimed_airflow.core.errors import ClaimedError

URL_SCHEMES = ("http", "https", "s3", "gs")  # Label Studio reads cloud storage URIs through its storages
KEYS = ("SOPInstanceUID", "file")  # copied into each task's data: input.labels keys the answers by them


def _base(base_url: str) -> str:
    parts = urlsplit(base_url)
    web = parts.scheme in URL_SCHEMES and parts.netloc
    if not base_url.isprintable() or " " in base_url or not (web or (not parts.scheme and base_url.startswith("/"))):
        raise ClaimedError(f"base_url: {base_url[:80]!r} is not an http(s), s3 or gs URL or a path from /")
    return base_url if base_url.endswith(("/", "=")) else base_url + "/"


def _relative(image) -> str | None:
    """``image`` as a URL path relative to the base: None when it is absolute, climbs, or has control characters."""
    text = str(image)
    if not text or not text.isprintable() or "\\" in text or text.startswith("/"):
        return None
    return None if ".." in PurePosixPath(text).parts else quote(text, safe="/")


def _plain(value):
    """A table cell as JSON: None for missing, Python numbers for NumPy ones."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _round_robin(groups: list[list[dict]], limit: int) -> list[dict]:
    picked, depth = [], 0
    while len(picked) < limit and any(depth < len(g) for g in groups):
        picked += [g[depth] for g in groups if depth < len(g)][: limit - len(picked)]
        depth += 1
    return picked


@component("output")
def label_studio_tasks(
    predictions: InputPath,
    base_url: str,
    limit: int = 100,
    group_by: str = "",
    image_column: str = "image",
    model_version: str = "",
    from_name: str = "label",
    to_name: str = "image",
    tasks: OutputPath = "tasks.json",
) -> dict:
    """Write a Label Studio import file (JSON tasks) of the least confident predictions, for radiologists to label.

    Reads predict.images' table (image, prediction, score, one ``p_<class>`` probability column per class,
    SOPInstanceUID, file, PatientSex, ...). The margin between the two highest class probabilities (the
    score alone with fewer than two ``p_`` columns) orders the images, smallest first; one task per
    SOPInstanceUID (else file, else image), at most ``limit``. With ``group_by`` (e.g. PatientSex) the
    groups take turns, each giving its least confident image, so that every group is reviewed. Each task
    has ``data.image`` (``base_url`` + the image's path, URL-escaped), SOPInstanceUID and file (the keys
    input.labels reads the answers back by) and the group, and the model's prediction as a Label Studio
    ``predictions`` entry (a pre-annotation with its score). Rows without probabilities or with an image
    path that is absolute or climbs (``..``) are set aside. The tasks expect a labelling config with an
    Image control ``to_name`` (``value="$image"``) and a single-choice Choices control ``from_name`` on it, one
    Choice per model class (the module's docstring and the Labels guide show it).
    Export the answers as Label Studio's JSON and read them back with input.labels.

    :param predictions: Predictions table from predict.images (CSV or Parquet).
    :param base_url: Where Label Studio finds the images folder of transform.dicom_to_images: an http(s), s3 or
        gs URL, or a path such as ``/data/local-files/?d=images/``; the image's relative path is appended.
    :param limit: Most tasks written.
    :param group_by: Column whose groups take turns (e.g. PatientSex); empty: least confident first overall.
    :param image_column: Column with the image's path relative to the images folder.
    :param model_version: Shown in Label Studio with each prediction (e.g. the model's version).
    :param from_name: Name of the labelling config's Choices control.
    :param to_name: Name of the labelling config's Image control.
    :param tasks: JSON list of Label Studio tasks, least confident first.
    """
    import numpy as np
    import pandas as pd

    from claimed_airflow.core.tables import read_table, require_columns

    if limit < 1:
        raise ClaimedError(f"limit: must be at least 1, got {limit}")
    prefix = _base(base_url)
    table = read_table(predictions, name="predictions")
    require_columns(table, [image_column, "prediction"], param="predictions")
    require_columns(table, [group_by or None], param="group_by", where="the predictions")
    classes = [c for c in table.columns if str(c).startswith("p_")]
    if len(classes) < 2:
        require_columns(table, ["score"], param="predictions", hint=" (or two p_<class> columns)")

    probabilities = table[classes or ["score"]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    ordered = -np.sort(-probabilities, axis=1)
    table["_top"] = ordered[:, 0]
    table["_margin"] = ordered[:, 0] - ordered[:, 1] if len(classes) >= 2 else ordered[:, 0]
    key = next((k for k in KEYS if k in table.columns), image_column)
    rows = []
    for row in table.sort_values(["_margin", image_column], kind="stable").to_dict("records"):
        path = _relative(row[image_column])
        if not np.isfinite(row["_margin"]):
            reject(str(row[image_column]), "no class probabilities")
        elif path is None:
            reject(str(row[image_column]), "image path is absolute, climbs out (..) or has control characters")
        else:
            rows.append({**row, "_url": prefix + path})
    seen: set[str] = set()  # one task per key: its least confident image
    rows = [r for r in rows if not (str(r[key]) in seen or seen.add(str(r[key])))]
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(str(_plain(row[group_by])) if group_by else "", []).append(row)
    picked = _round_robin([groups[g] for g in sorted(groups)], limit)
    out = []
    for row in picked:
        data = {"image": row["_url"], **{k: _plain(row[k]) for k in KEYS if k in row}}
        if group_by:
            data[group_by] = _plain(row[group_by])
        result = {"from_name": from_name, "to_name": to_name, "type": "choices"}
        result["value"] = {"choices": [str(row["prediction"])]}
        prediction = {"model_version": model_version or "claimed", "score": round(float(row["_top"]), 6)}
        out.append({"data": data, "predictions": [{**prediction, "result": [result]}]})
    Path(tasks).parent.mkdir(parents=True, exist_ok=True)
    Path(tasks).write_text(json.dumps(out, indent=1, ensure_ascii=True, allow_nan=False))
    margins = [float(r["_margin"]) for r in picked]
    return {"written": len(out), "groups": len(groups), "max_margin": round(max(margins), 6) if margins else None}
