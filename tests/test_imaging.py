"""One DICOM file, one network input: ``dicom_to_images`` + training, ``predict.images``, the server and Watson ML.

Every path that turns pixels into network input goes through ``claimed_airflow.core.imaging``; these
tests compare the arrays each path hands to the network, exactly.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image

from claimed_airflow.components.train.image_classifier import ImageClassifier, load_gray_images
from claimed_airflow.core.imaging import gray, network_input
from claimed_airflow.core.runner import run
from tests.conftest import ROOT
from tests.tiny_model import SIZE, make_onnx_model_folder

SAMPLE = sorted((ROOT / "dags" / "sample_data" / "chestxray" / "dicom").glob("*.dcm"))[0]


def windowed_j2k(path: Path) -> Path:
    """A 12-bit MONOCHROME1 JPEG 2000 file with a rescale and a window: fast_decode reduces it, the VOI applies."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, SecondaryCaptureImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "imaging-1", "Imaging^Test", "OT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 120, 100, 1, "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.WindowCenter, ds.WindowWidth = 1, -1024, 40, 400
    y, x = np.mgrid[:120, :100]
    noise = np.random.default_rng(0).integers(0, 50, (120, 100))
    pixels = ((np.sin(x / 7) + np.cos(y / 5)) * 600 + 1024 + noise).clip(0, 4095).astype(np.uint16)
    ds.compress(JPEG2000Lossless, pixels)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_onnx_model_folder(tmp_path_factory.mktemp("imaging") / "tiny" / "1")


@pytest.fixture
def seen(monkeypatch):
    """The batches every ImageClassifier is asked to predict, in order."""
    batches: list[np.ndarray] = []
    real = ImageClassifier.predict

    def predict(self, batch):
        batches.append(np.array(batch, copy=True))
        return real(self, batch)

    monkeypatch.setattr(ImageClassifier, "predict", predict)
    return batches


def dicom_files(folder: Path) -> list[Path]:
    folder.mkdir()
    (folder / SAMPLE.name).write_bytes(SAMPLE.read_bytes())
    return [folder / SAMPLE.name, windowed_j2k(folder / "windowed_j2k.dcm")]


@pytest.mark.parametrize("images_size", [SIZE, 0], ids=["images-at-network-size", "images-at-original-size"])
def test_one_dicom_file_gives_one_network_input_everywhere(tmp_path, model, seen, images_size):
    from claimed_airflow.components.deploy.watson_ml import _sample_input
    from claimed_airflow.components.train.mobilenet_v2 import _normalise, import_torch
    from claimed_airflow.serving import ServedModel

    files = dicom_files(tmp_path / "files")
    pd.DataFrame({"file": [f.name for f in files], "label": ["a", "b"]}).to_csv(tmp_path / "m.csv", index=False)
    arguments = {"metadata": str(tmp_path / "m.csv"), "files": str(tmp_path / "files"), "size": images_size}
    images = Path(run("transform.dicom_to_images", arguments, root=str(tmp_path))["images"])

    # (a) dicom_to_images + the training input (train.mobilenet_v2: load_gray_images, then network_input / torch)
    pixels, _, _, index = load_gray_images(str(images), SIZE)
    trained = network_input(pixels)
    assert trained.dtype == np.float32 and trained.shape == (2, SIZE, SIZE, 3)
    assert list(index["file"]) == [f.name for f in files]
    torch, _ = import_torch()
    np.testing.assert_array_equal(_normalise(torch.from_numpy(pixels)).permute(0, 2, 3, 1).numpy(), trained)

    # (b) predict.images
    seen.clear()
    run("predict.images", {"model": str(model), "images": str(images)}, root=str(tmp_path))
    np.testing.assert_array_equal(np.concatenate(seen), trained)

    # (c) the model server: the DICOM file, the PNG dicom_to_images wrote, base64 PNGs in a BYTES tensor
    served = ServedModel(model)
    pngs = [(images / name).read_bytes() for name in index["image"]]
    for i, (file, png) in enumerate(zip(files, pngs, strict=True)):
        if images_size or file.name == SAMPLE.name:
            # the server decodes a DICOM file as dicom_to_images does for the network's size (with fast_decode);
            # from images of the original size, a compressed file reduced while decoding differs by a few levels
            seen.clear()
            served.answer(True, file.read_bytes(), "application/dicom", None)
            np.testing.assert_array_equal(seen[0], trained[i : i + 1], err_msg=f"DICOM body {file.name}")
        seen.clear()
        served.answer(False, png, "image/png", None)
        np.testing.assert_array_equal(seen[0], trained[i : i + 1], err_msg=f"PNG body of {file.name}")
    seen.clear()
    tensor = {"name": "input", "datatype": "BYTES", "shape": [2], "data": [base64.b64encode(p).decode() for p in pngs]}
    served.answer(True, json.dumps({"inputs": [tensor]}).encode(), "application/json", None)
    np.testing.assert_array_equal(seen[0], trained)

    # (d) Watson ML scoring: the sample image (a folder: its first labelled image) as the scored payload
    np.testing.assert_array_equal(_sample_input(str(images), SIZE), trained[:1])
    for i, name in enumerate(index["image"]):
        np.testing.assert_array_equal(_sample_input(str(images / name), SIZE), trained[i : i + 1])


@pytest.mark.filterwarnings("ignore:The string .* is unlikely to represent:UserWarning")  # the sample's PatientName
def test_a_secondary_capture_shows_the_pixels_dicom_to_images_writes(tmp_path):
    """output.dicom renders a prediction on the 8-bit pixels dicom_to_images writes at the original size."""
    from claimed_airflow.components.output.dicom import build_sc

    files = dicom_files(tmp_path / "files")
    pd.DataFrame({"file": [f.name for f in files], "label": ["a", "b"]}).to_csv(tmp_path / "m.csv", index=False)
    arguments = {"metadata": str(tmp_path / "m.csv"), "files": str(tmp_path / "files"), "size": 0}
    images = Path(run("transform.dicom_to_images", arguments, root=str(tmp_path))["images"])
    index = pd.read_csv(images / "index.csv")
    for file, name in zip(files, index["image"], strict=True):
        capture = build_sc(pydicom.dcmread(file), file, "a", 0.5, "tiny", None)
        np.testing.assert_array_equal(capture.pixel_array, np.asarray(Image.open(images / name)), err_msg=file.name)


def test_rgb_pixels_become_grey_as_an_rgb_image_file_does(model, seen):
    """A UINT8 RGB tensor and the same pixels as an RGB PNG give the server the same input (Pillow's luma)."""
    from claimed_airflow.serving import ServedModel

    rgb = np.random.default_rng(5).integers(0, 256, (1, SIZE, SIZE, 3), dtype=np.uint8)
    np.testing.assert_array_equal(gray(rgb)[0], np.asarray(Image.fromarray(rgb[0]).convert("L")))
    buffer = io.BytesIO()
    Image.fromarray(rgb[0]).save(buffer, format="PNG")
    served = ServedModel(model)
    seen.clear()
    tensor = {"name": "input", "datatype": "UINT8", "shape": list(rgb.shape), "data": rgb.tolist()}
    served.answer(True, json.dumps({"inputs": [tensor]}).encode(), "application/json", None)
    served.answer(True, buffer.getvalue(), "image/png", None)
    np.testing.assert_array_equal(seen[0], seen[1])


def test_explanations_see_the_network_input_as_the_pixels_it_came_from():
    """LIME and the robustness pictures turn network input back into [0, 1] through the same constants."""
    import numpy as np

    from claimed_airflow.core.imaging import input_to_unit, network_input, unit_to_input

    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    inputs = network_input(pixels)
    np.testing.assert_allclose(input_to_unit(inputs)[..., 0], pixels / 255.0, atol=1e-6)
    assert np.array_equal(unit_to_input(input_to_unit(inputs)), inputs)
