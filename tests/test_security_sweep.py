"""Hostile values beyond issue 16's list: table cells, docstrings, manifests and params never become paths,
code, markup or log lines unescaped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from claimed_airflow.core.runner import run

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = sorted((ROOT / "dags" / "sample_data" / "chestxray" / "dicom").glob("*.dcm"))[0]


@pytest.fixture
def files_and_secret(tmp_path):
    """A files folder with one good DICOM file, a DICOM file outside it (a private scan) and a link to it."""
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(SAMPLE, files / "good.dcm")
    private = tmp_path / "private" / "scan.dcm"
    private.parent.mkdir()
    shutil.copy(SAMPLE, private)
    (files / "link.dcm").symlink_to(private)
    return files, ["good.dcm", "../private/scan.dcm", str(private), "link.dcm"]


def _rejected(result) -> dict:
    return {r["item"]: r["reason"] for r in json.loads(Path(result["manifest"]).read_text())["rejected"]}


def test_dicom_to_images_reads_only_under_files(tmp_path, files_and_secret):
    pytest.importorskip("pydicom", reason="extra dicom")
    files, names = files_and_secret
    metadata = tmp_path / "metadata.csv"
    pd.DataFrame({"file": names, "label": "x"}).to_csv(metadata, index=False)
    result = run(
        "transform.dicom_to_images",
        {"files": str(files), "metadata": str(metadata), "size": 16, "workers": 1},
        root=str(tmp_path),
    )
    assert result["images_written"] == 1 and result["files_rejected"] == 3
    rejected = _rejected(result)
    assert sorted(rejected) == sorted(names[1:])
    assert all(reason.startswith("leads out of the files folder: ") for reason in rejected.values())


def test_output_dicom_reads_only_under_files(tmp_path, files_and_secret):
    pytest.importorskip("highdicom", reason="extra dicom")
    files, names = files_and_secret
    predictions = tmp_path / "predictions.csv"
    pd.DataFrame({"file": names, "prediction": "covid", "score": 0.9}).to_csv(predictions, index=False)
    result = run(
        "output.dicom",
        {"predictions": str(predictions), "files": str(files), "kind": "sr", "model_name": "m"},
        root=str(tmp_path),
    )
    assert result["dicom_written"] == 1
    rejected = _rejected(result)
    assert sorted(rejected) == sorted(names[1:])
    assert all(reason.startswith("leads out of the files folder: ") for reason in rejected.values())
