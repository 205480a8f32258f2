"""Each component on small real data (the shared DICOM and chest X-ray files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image

from claimed_airflow.components.input.dicom import age_in_years
from claimed_airflow.core.errors import ClaimedError, ParameterError
from claimed_airflow.core.imaging import to_uint8
from claimed_airflow.core.runner import run


def _manifest(result) -> dict:
    return json.loads(Path(result["manifest"]).read_text())


def test_images_to_dicom_builds_readable_secondary_captures(tmp_path, shared_data):
    chest = shared_data / "chestxray"
    result = run(
        "input.images_to_dicom",
        {"images": str(chest), "labels": str(chest / "labels.csv"), "max_size": 128},
        root=str(tmp_path),
    )
    assert result["images_converted"] == 10
    index = pd.read_csv(result["index"])
    assert set(index["label"]) == {"COVID-19", "No Finding"}
    first = pydicom.dcmread(Path(result["dicom"]) / index["file"][0])
    assert first.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert max(first.Rows, first.Columns) == 128
    assert first.pixel_array.dtype == np.uint8
    labels = pd.read_csv(chest / "labels.csv").set_index("filename")
    row = labels.loc[index["source"][0]]
    assert first.PatientSex == row["sex"]
    again = run(
        "input.images_to_dicom",
        {"images": str(chest), "labels": str(chest / "labels.csv"), "max_size": 128},
        root=str(tmp_path / "again"),
    )
    assert pydicom.dcmread(Path(again["dicom"]) / index["file"][0]).SOPInstanceUID == first.SOPInstanceUID


def test_images_to_dicom_sets_aside_missing_images(tmp_path, shared_data):
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,finding,sex,age\n7afaaccc.jpg,No Finding,F,\nmissing.png,COVID-19,M,40\n")
    result = run(
        "input.images_to_dicom", {"images": str(shared_data / "chestxray"), "labels": str(labels)}, root=str(tmp_path)
    )
    assert result["images_converted"] == 1
    assert [r["item"] for r in _manifest(result)["rejected"]] == ["missing.png"]


def test_dicom_input_reads_good_files_and_sets_aside_bad_ones(tmp_path, dicom_folder):
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\nCT_small.dcm,ct\nMR_small.dcm,mr\n")
    result = run("input.dicom", {"source": str(dicom_folder), "labels": str(labels)}, root=str(tmp_path / "out"))
    table = pd.read_parquet(result["metadata"])
    assert sorted(table["file"]) == sorted(["CT_small.dcm", "MR_small.dcm", "JPGExtended.dcm", "nested/dx_image.dcm"])
    assert result["files_rejected"] == 3 and result["duplicates"] == 1
    rejected = {r["item"]: r["reason"] for r in _manifest(result)["rejected"]}
    assert {"truncated.dcm", "notes.txt"} <= set(rejected)
    assert "duplicate SOPInstanceUID" in rejected["MR_small_RLE.dcm"]  # same instance as MR_small.dcm
    assert "no label" in rejected["JPGExtended.dcm"]  # readable, but no label for it: reported too
    ct = table.set_index("file").loc["CT_small.dcm"]
    assert ct["Modality"] == "CT" and ct["label"] == "ct" and ct["Rows"] == 128
    assert ct["TransferSyntaxUID"] and ct["SOPInstanceUID"]
    assert (Path(result["files"]) / "nested" / "dx_image.dcm").exists()
    assert not (Path(result["files"]) / "truncated.dcm").exists()


def test_dicom_input_glob_and_errors(tmp_path, dicom_folder):
    result = run("input.dicom", {"source": str(dicom_folder / "MR_*.dcm")}, root=str(tmp_path))
    assert sorted(pd.read_parquet(result["metadata"])["file"]) == ["MR_small.dcm"]  # RLE: same SOPInstanceUID
    with pytest.raises(ClaimedError, match="^source: input path does not exist"):
        run("input.dicom", {"source": str(tmp_path / "absent")}, root=str(tmp_path))
    with pytest.raises(ClaimedError, match="no readable DICOM file"):
        run("input.dicom", {"source": str(dicom_folder / "notes.txt")}, root=str(tmp_path))


@pytest.mark.parametrize(("text", "years"), [("045Y", 45.0), ("006M", 0.5), ("bad", None), (None, None)])
def test_patient_age_in_years(text, years):
    assert age_in_years(text) == years


def test_dicom_to_images_decodes_compressed_files(tmp_path, dicom_folder):
    read = run("input.dicom", {"source": str(dicom_folder), "duplicates": "keep"}, root=str(tmp_path))
    result = run(
        "transform.dicom_to_images",
        {"metadata": read["metadata"], "files": read["files"], "size": 32},
        root=str(tmp_path),
    )
    index = pd.read_csv(Path(result["images"]) / "index.csv")
    assert len(index) == 5  # RLE, JPEG extended and the MONOCHROME1 DX decode too
    for name in index["image"]:
        image = Image.open(Path(result["images"]) / name)
        assert image.size == (32, 32) and image.mode == "L"
        assert np.asarray(image).max() > np.asarray(image).min()


def test_monochrome1_is_inverted(shared_data):
    ds = pydicom.dcmread(shared_data / "dicom" / "highdicom" / "dx_image.dcm")
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    normal = to_uint8(ds).astype(int)
    ds.PhotometricInterpretation = "MONOCHROME2"
    assert np.abs(normal + to_uint8(ds).astype(int) - 255).max() <= 1  # inverted, up to rounding


@pytest.fixture
def predictions(tmp_path) -> Path:
    path = tmp_path / "predictions.csv"
    pd.DataFrame(
        {"label": ["a", "a", "b", "b", "b"], "prediction": ["a", "b", "b", "b", "a"], "age": [20, 30, 40, 50, 60]}
    ).to_csv(path, index=False)
    return path


def test_filter_and_apply(tmp_path, predictions):
    kept = run(
        "filter.rows", {"table": str(predictions), "condition": "label == prediction and age > 25"}, root=str(tmp_path)
    )
    assert pd.read_parquet(kept["output"])["age"].tolist() == [40, 50]
    applied = run(
        "transform.apply",
        {"table": str(predictions), "column": "senior", "expression": "age >= 50"},
        root=str(tmp_path),
    )
    assert pd.read_parquet(applied["output"])["senior"].tolist() == [False, False, False, True, True]
    with pytest.raises(ParameterError, match="condition: .*Attribute is not allowed"):
        run("filter.rows", {"table": str(predictions), "condition": "age.__class__"}, root=str(tmp_path))


def test_confusion_matrix(tmp_path, predictions):
    result = run("metric.confusion_matrix", {"predictions": str(predictions)}, root=str(tmp_path))
    metrics = json.loads(Path(result["metrics"]).read_text())
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert metrics["matrix"] == [[1, 1], [1, 2]]
    assert metrics["precision"]["b"] == pytest.approx(2 / 3) and metrics["recall"]["a"] == pytest.approx(1 / 2)
    assert Image.open(result["plot"]).format == "PNG"


@pytest.mark.parametrize(
    ("condition", "blessed"),
    [("accuracy >= 0.5", True), ("accuracy > 0.9 or count < 2", False), ("precision_b > 0.6 and count == 5", True)],
)
def test_blessing_condition(tmp_path, predictions, condition, blessed):
    metrics = run("metric.confusion_matrix", {"predictions": str(predictions)}, root=str(tmp_path))["metrics"]
    assert (
        run("deploy.condition_blessing", {"metrics": metrics, "condition": condition}, root=str(tmp_path))["blessed"]
        is blessed
    )


def test_deploy_local_versions(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"1")
    first = run("deploy.local", {"model": str(model), "model_name": "m"}, root=str(tmp_path / "out"))
    second = run("deploy.local", {"model": str(model), "model_name": "m"}, root=str(tmp_path / "out"))
    assert first["model_uri"] == str(tmp_path / "out" / "models" / "m" / "1")
    assert second["model_version"] == 2 and (Path(second["model_uri"]) / "weights.bin").read_bytes() == b"1"
    with pytest.raises(ClaimedError, match="model_name: '../x' is not a valid name"):
        run("deploy.local", {"model": str(model), "model_name": "../x"}, root=str(tmp_path))


def test_train_and_predict_mobilenet_v2(tmp_path):
    pytest.importorskip("keras")
    sample = Path(__file__).resolve().parents[1] / "dags" / "sample_data" / "chestxray"
    read = run(
        "input.dicom", {"source": str(sample / "dicom"), "labels": str(sample / "labels.csv")}, root=str(tmp_path)
    )
    images = run(
        "transform.dicom_to_images",
        {"metadata": read["metadata"], "files": read["files"], "size": 32},
        root=str(tmp_path),
    )["images"]
    args = {"images": images, "epochs": 1, "image_size": 32, "seed": 7}
    first = run("train.mobilenet_v2", args, root=str(tmp_path / "a"))
    second = run("train.mobilenet_v2", args, root=str(tmp_path / "b"))
    assert json.loads((Path(first["model"]) / "labels.json").read_text())["classes"] == ["COVID-19", "No Finding"]
    assert first["train_loss"] == pytest.approx(second["train_loss"], rel=1e-5)  # seeded
    predicted = run("predict.images", {"model": first["model"], "images": images}, root=str(tmp_path))
    table = pd.read_csv(predicted["predictions"])
    assert len(table) == 10 and set(table["prediction"]) <= {"COVID-19", "No Finding"}
    assert np.allclose(table[["p_COVID-19", "p_No Finding"]].sum(axis=1), 1.0, atol=1e-4)
    assert {"PatientSex", "PatientAge", "SOPInstanceUID"} <= set(table.columns)
