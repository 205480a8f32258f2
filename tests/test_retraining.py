"""Retraining on the union (issue 26): input.dicom's extra_sources, and the model_retraining DAG end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from claimed_airflow.core.errors import ClaimedError, ParameterError
from claimed_airflow.core.runner import run


@pytest.fixture(scope="module")
def two_cohorts(tmp_path_factory) -> dict[str, Path]:
    """The original set (8 phantoms, labels by file) and newly labelled studies (6, labels by SOPInstanceUID)."""
    from tests.synthetic_chestxray import write_cohort

    root = tmp_path_factory.mktemp("cohorts")
    write_cohort(root / "original", count=8, seed=7)
    new = write_cohort(root / "new", count=6, seed=8)
    uids = run("input.dicom", {"source": str(root / "new" / "dicom")}, root=str(root / "out"))["metadata"]
    by_file = pd.read_parquet(uids).set_index("file")["SOPInstanceUID"]
    labels = pd.DataFrame({"SOPInstanceUID": new["file"].map(by_file), "label": new["label"]})
    labels.to_csv(root / "new" / "by_uid.csv", index=False)
    return {"root": root, "original": root / "original", "new": root / "new"}


def test_extra_sources_are_read_into_one_table_and_folder(two_cohorts, tmp_path):
    original, new = two_cohorts["original"], two_cohorts["new"]
    shutil.copytree(new / "dicom", tmp_path / "new")
    shutil.copy(original / "dicom" / "phantom_07_0000.dcm", tmp_path / "new" / "again.dcm")  # already read
    extra = [{"source": str(tmp_path / "new"), "labels": str(new / "by_uid.csv")}]  # label_key SOPInstanceUID
    arguments = {"source": str(original / "dicom"), "labels": str(original / "labels.csv"), "extra_sources": extra}
    result = run("input.dicom", arguments, root=str(tmp_path / "out"))
    assert (result["sources"], result["files_per_source"], result["duplicates"]) == (2, [8, 6], 1)
    table = pd.read_parquet(result["metadata"])
    assert len(table) == 14 and table["label"].notna().all() and table["SOPInstanceUID"].is_unique
    extra_rows = table[table["source"] == 1]
    assert extra_rows["file"].str.startswith("_extra/1/phantom_08_").all() and len(extra_rows) == 6
    assert all((Path(result["files"]) / file).is_file() for file in table["file"])
    assert not (Path(result["files"]) / "_extra" / "1" / "again.dcm").exists()  # the duplicate is set aside


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"source": "x"}, r"^extra_sources: expected a list, got \{'source': 'x'\}$"),
        (["x"], r"^extra_sources\[0\]: expected JSON \(dict\), got 'x'"),
        ([{"source": "x", "labels": "y", "path": "z"}], r"^extra_sources\[0\]: unknown key\(s\) 'path' "),
        ([{"source": "x"}], r"^extra_sources\[0\]\.labels: must be non-empty text, got 'None'$"),
        ([{"source": "a\nb", "labels": "y"}], r"^extra_sources\[0\]\.source: 'a\\nb' has control characters"),
        ([{"source": "x", "labels": "y", "label_key": "1; DROP"}], r"^extra_sources\[0\]\.label_key: '1; DROP' is"),
    ],
)
def test_hostile_extra_sources_are_one_line_errors(two_cohorts, tmp_path, extra, message):
    arguments = {"source": str(two_cohorts["original"] / "dicom"), "extra_sources": extra}
    with pytest.raises((ClaimedError, ParameterError), match=message):
        run("input.dicom", arguments, root=str(tmp_path))
    assert not list(tmp_path.rglob("metadata.parquet"))  # checked before anything was read
