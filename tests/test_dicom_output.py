"""output.dicom: predictions written back as DICOM SR / Secondary Capture, read back with pydicom."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run

pytest.importorskip("highdicom")


def _walk(ds):
    for elem in ds:
        yield elem
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _walk(item)


@pytest.fixture
def predicted(tmp_path, dicom_folder):
    """input.dicom on real files plus a prediction table in the shape predict.images writes."""
    read = run("input.dicom", {"source": str(dicom_folder)}, root=str(tmp_path))
    table = pd.read_parquet(read["metadata"])
    table["prediction"] = ["COVID-19", "No Finding", "No Finding", "COVID-19"][: len(table)]
    table["score"] = [0.91, 0.62, 0.77, 0.55][: len(table)]
    table.loc[len(table)] = {**table.iloc[0].to_dict(), "file": "missing.dcm"}
    path = tmp_path / "predictions.csv"
    table.to_csv(path, index=False)
    return path, read["files"], table


@pytest.mark.parametrize("kind", ["sr", "sc"])
def test_predictions_written_as_dicom_reference_the_sources(tmp_path, predicted, kind):
    path, files, table = predicted
    args = {"predictions": str(path), "files": files, "kind": kind, "model_name": "mobilenet_v2 test"}
    result = run("output.dicom", args, root=str(tmp_path))
    assert result["dicom_written"] == len(table) - 1  # missing.dcm is set aside
    index = pd.read_csv(Path(result["dicom"]) / "index.csv")
    for row, expected in zip(index.to_dict("records"), table.iloc[:-1].to_dict("records"), strict=True):
        ds = pydicom.dcmread(Path(result["dicom"]) / row["file"])
        source = pydicom.dcmread(Path(files) / expected["file"], stop_before_pixels=True)
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        assert ds.PatientID == source.PatientID
        assert ds.SOPInstanceUID != source.SOPInstanceUID and ds.SeriesInstanceUID != source.SeriesInstanceUID
        referenced = {e.value for e in _walk(ds) if e.keyword == "ReferencedSOPInstanceUID"}
        assert source.SOPInstanceUID in referenced
        if kind == "sr":
            assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
            evidence = ds.CurrentRequestedProcedureEvidenceSequence[0]
            assert evidence.StudyInstanceUID == source.StudyInstanceUID
            assert evidence.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
            meanings = {e.value for e in _walk(ds) if e.keyword == "CodeMeaning"}
            assert expected["prediction"] in meanings and "Predicted class" in meanings
            values = [float(e.value) for e in _walk(ds) if e.keyword == "NumericValue"]
            assert values == [pytest.approx(expected["score"])]
        else:
            assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
            assert expected["prediction"] in ds.ImageComments
            assert ds.pixel_array.dtype.name == "uint8" and ds.Rows == source.Rows
    again = run("output.dicom", args, root=str(tmp_path / "again"))  # retried: the same instances
    assert sorted(p.name for p in Path(again["dicom"]).glob("*.dcm")) == sorted(index["file"])
    with pytest.raises(ClaimedError, match="^predictions: column 'prediction' missing"):
        run("output.dicom", {**args, "predictions": str(_no_prediction(tmp_path))}, root=str(tmp_path))


def _no_prediction(tmp_path) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text("file,label\nCT_small.dcm,a\n")
    return path


@pytest.mark.parametrize("kind", ["sr", "sc"])
def test_what_we_write_passes_an_iod_validator(tmp_path, shared_data, kind):
    """dciodvfy (dicom3tools, an IOD validator no one here wrote) finds no error in any SR or SC written
    from the shared files and the flagship's sample (files with odd values, e.g. an age of ``62``)."""
    dciodvfy = shutil.which("dciodvfy")
    if dciodvfy is None:
        pytest.skip("dciodvfy is not installed (apt-get install -y dicom3tools; CI installs it)")
    sources = tmp_path / "sources"
    sources.mkdir()
    sample = Path(__file__).resolve().parents[1] / "dags" / "sample_data" / "chestxray" / "dicom"
    for path in [*(shared_data / "dicom").rglob("*.dcm"), *sample.glob("*.dcm")]:
        shutil.copy(path, sources / path.name)
    read = run("input.dicom", {"source": str(sources)}, root=str(tmp_path))
    table = pd.read_parquet(read["metadata"])
    table["prediction"] = ["COVID-19" if n % 2 else "No Finding" for n in range(len(table))]
    table["score"] = 0.5
    table.to_csv(tmp_path / "predictions.csv", index=False)
    args = {"predictions": str(tmp_path / "predictions.csv"), "files": read["files"], "kind": kind}
    result = run("output.dicom", args, root=str(tmp_path / kind))
    assert result["dicom_written"] == len(table) >= 25
    errors = {}
    for path in sorted(Path(result["dicom"]).glob("*.dcm")):
        answer = subprocess.run([dciodvfy, "-new", str(path)], capture_output=True, text=True, timeout=60)
        found = [line for line in (answer.stdout + answer.stderr).splitlines() if line.startswith("Error")]
        if found:
            errors[path.name] = found
    assert not errors, errors
