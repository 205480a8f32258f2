"""transform.dicom_to_images on every shared DICOM file, checked against pydicom's own LUT steps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.filewriter import dcmwrite
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import MPEG2MPML, ExplicitVRBigEndian, ImplicitVRLittleEndian

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.imaging import fit, reduced_pixels, to_uint8
from claimed_airflow.core.runner import run


def _shared_files(shared_data) -> list[Path]:
    return sorted((shared_data / "dicom").rglob("*.dcm"))


def reference_uint8(ds, frame: int = 0) -> np.ndarray:
    """pydicom's pixel_array + apply_modality_lut + apply_voi_lut, scaled to 0-255 by the VOI output range."""
    pixels = ds.pixel_array
    if int(ds.get("NumberOfFrames") or 1) > 1:
        pixels = pixels[frame]
    if pixels.ndim == 3:
        luma = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        unit = luma / (2 ** int(ds.BitsStored) - 1)
    else:
        values = apply_modality_lut(pixels, ds)
        if ds.get("VOILUTSequence"):
            unit = apply_voi_lut(np.rint(values).astype(int), ds) / (2 ** ds.VOILUTSequence[0].LUTDescriptor[2] - 1)
        elif "WindowCenter" in ds:
            # pydicom's windowing output range (pydicom.pixels.processing.apply_windowing)
            if ds.PixelRepresentation == 0:
                y_min, y_max = 0, 2**ds.BitsStored - 1
            else:
                y_min, y_max = -(2 ** (ds.BitsStored - 1)), 2 ** (ds.BitsStored - 1) - 1
            if "RescaleSlope" in ds and "RescaleIntercept" in ds:
                y_min = y_min * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
                y_max = y_max * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            unit = (apply_voi_lut(values, ds) - y_min) / (y_max - y_min)
        else:
            unit = (values - values.min()) / (values.max() - values.min())
        if ds.PhotometricInterpretation == "MONOCHROME1":
            unit = 1.0 - unit
    return np.clip(np.rint(unit * 255), 0, 255).astype(np.uint8)


def _assert_close(ours: np.ndarray, ref: np.ndarray, name: str) -> None:
    assert ours.shape == ref.shape, name
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert diff.max() <= 1, f"{name}: max difference {diff.max()}"
    assert abs(ours.mean() - ref.mean()) < 0.5 and abs(ours.std() - ref.std()) < 0.5, name
    for q in (1, 50, 99):
        assert abs(np.percentile(ours, q) - np.percentile(ref, q)) <= 1, name


@pytest.fixture
def all_dicom(tmp_path, shared_data) -> Path:
    """Every shared DICOM file, plus an implicit VR and a big-endian copy of CT_small."""
    folder = tmp_path / "all"
    for path in _shared_files(shared_data):
        target = folder / path.relative_to(shared_data / "dicom")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    ct = shared_data / "dicom" / "pydicom" / "CT_small.dcm"
    ds = pydicom.dcmread(ct)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(folder / "ct_implicit.dcm")
    ds = pydicom.dcmread(ct)
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    ds.PixelData = ds.pixel_array.astype(">i2").tobytes()
    dcmwrite(folder / "ct_big_endian.dcm", ds, implicit_vr=False, little_endian=False, force_encoding=True)
    return folder


def test_every_shared_file_matches_pydicom_luts(tmp_path, all_dicom):
    read = run("input.dicom", {"source": str(all_dicom), "duplicates": "keep"}, root=str(tmp_path))
    result = run(
        "transform.dicom_to_images",
        {"metadata": read["metadata"], "files": read["files"], "size": 0, "workers": 1},
        root=str(tmp_path),
    )
    index = pd.read_csv(Path(result["images"]) / "index.csv")
    files = sorted(p.relative_to(all_dicom).as_posix() for p in all_dicom.rglob("*.dcm"))
    assert sorted(index["file"]) == files  # every file decoded, nothing set aside
    assert result["files_rejected"] == 0
    syntaxes = set(index["TransferSyntaxUID"])
    assert {"1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.5"} <= syntaxes
    assert {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.70"} <= syntaxes
    assert {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"} <= syntaxes
    for row in index.to_dict("records"):
        ds = pydicom.dcmread(all_dicom / row["file"])
        ours = np.asarray(Image.open(Path(result["images"]) / row["image"]))
        _assert_close(ours, reference_uint8(ds, int(row["frame"])), row["file"])


def test_monochrome1_chest_cr_is_inverted_and_windowed(shared_data):
    ds = pydicom.dcmread(shared_data / "dicom" / "pydicom-data" / "RG1_J2KI.dcm")
    assert ds.PhotometricInterpretation == "MONOCHROME1" and "WindowCenter" in ds
    ours = to_uint8(ds)
    _assert_close(ours, reference_uint8(ds), "RG1_J2KI.dcm")
    ds.PhotometricInterpretation = "MONOCHROME2"
    assert np.abs(ours.astype(int) + to_uint8(ds).astype(int) - 255).max() <= 1


def test_voi_lut_sequence_and_window_functions(shared_data):
    from pydicom.dataset import Dataset

    ds = pydicom.dcmread(shared_data / "dicom" / "pydicom" / "MR_small.dcm")
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 12]
    item.LUTData = [min(4095, 4 * i) for i in range(4096)]
    ds.VOILUTSequence = [item]
    _assert_close(to_uint8(ds), reference_uint8(ds), "VOI LUT sequence")
    del ds.VOILUTSequence
    for function in ("LINEAR_EXACT", "SIGMOID"):
        ds.VOILUTFunction = function
        _assert_close(to_uint8(ds), reference_uint8(ds), function)
    ds.WindowWidth = 0  # invalid window: falls back to the min..max range
    plain = to_uint8(ds)
    assert plain.min() == 0 and plain.max() == 255


@pytest.mark.parametrize("aspect", ["stretch", "pad", "crop"])
def test_size_aspect_and_frames(tmp_path, shared_data, aspect):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(shared_data / "dicom" / "pydicom-data" / "emri_small.dcm", folder)  # 10 frames of 64x64
    shutil.copy(shared_data / "dicom" / "pydicom-data" / "US1_J2KI.dcm", folder)  # 640x480 YBR_ICT
    read = run("input.dicom", {"source": str(folder)}, root=str(tmp_path))
    result = run(
        "transform.dicom_to_images",
        {
            "metadata": read["metadata"],
            "files": read["files"],
            "size": 32,
            "aspect": aspect,
            "all_frames": True,
            "shards": True,
            "shard_size": 8,
            "workers": 2,
        },
        root=str(tmp_path),
    )
    out = Path(result["images"])
    index = pd.read_csv(out / "index.csv")
    assert result["images_written"] == 11 and result["workers"] == 2
    assert sorted(index.loc[index["file"] == "emri_small.dcm", "frame"]) == list(range(10))
    assert "_unlabelled/emri_small_f0003.png" in set(index["image"])
    us = np.asarray(Image.open(out / index.loc[index["file"] == "US1_J2KI.dcm", "image"].item()))
    assert us.shape == (32, 32)
    gradient = np.tile(np.linspace(1, 255, 40).astype(np.uint8), (30, 1))  # 40 wide, 30 high
    fitted = np.asarray(fit(gradient, 20, aspect))
    assert fitted.shape == (20, 20)
    if aspect == "pad":  # black bars above and below, the whole gradient in between
        assert fitted[:2].max() == 0 and fitted[-2:].max() == 0 and fitted[10, 0] < 10 and fitted[10, -1] > 245
    elif aspect == "crop":  # the centre 30 columns: the ends of the gradient are cut
        assert fitted.min() > 25 and fitted.max() < 230
    else:
        assert fitted.min() < 10 and fitted.max() > 245
    shards = sorted((out / "_shards").glob("shard-*.npz"))
    assert len(shards) == 2
    arrays = [np.load(p) for p in shards]
    assert sum(len(a["images"]) for a in arrays) == 11 and arrays[0]["images"].shape[1:] == (32, 32)
    first = arrays[0]["image"][0]
    assert np.array_equal(arrays[0]["images"][0], np.asarray(Image.open(out / first)))
    middle = run(
        "transform.dicom_to_images",
        {"metadata": read["metadata"], "files": read["files"], "size": 0, "frame": -1, "workers": 1},
        root=str(tmp_path / "last"),
    )
    last = pd.read_csv(Path(middle["images"]) / "index.csv").set_index("file")
    assert last.loc["emri_small.dcm", "frame"] == 9
    ds = pydicom.dcmread(folder / "emri_small.dcm")
    ours = np.asarray(Image.open(Path(middle["images"]) / last.loc["emri_small.dcm", "image"]))
    _assert_close(ours, reference_uint8(ds, 9), "emri frame 9")


def test_fast_decode_reads_only_the_resolution_it_needs(tmp_path, shared_data):
    dicom = shared_data / "dicom"
    reduced = {
        "RG1_J2KI.dcm": (1955, 1841),  # 15-bit MONOCHROME1 with a window, odd sides
        "RG3_J2KI.dcm": (1760, 1760),  # 10-bit, windowed
        "US1_J2KI.dcm": (480, 640),  # colour (YBR_ICT)
    }
    folder = tmp_path / "in"
    folder.mkdir()
    for name, (rows, columns) in reduced.items():
        ds = pydicom.dcmread(dicom / "pydicom-data" / name)
        assert (ds.Rows, ds.Columns) == (rows, columns)
        pixels = reduced_pixels(ds, 64)
        assert pixels is not None and 64 <= min(pixels.shape[:2]) < 128, name
        shutil.copy(dicom / "pydicom-data" / name, folder)
    # decoded in full: signed data, no window (a reduced min..max would shift grey levels), no reduction needed
    assert reduced_pixels(pydicom.dcmread(dicom / "pydicom" / "JPEG2000.dcm"), 64) is None
    chest = next(dicom.rglob("1.2.276.*.dcm"))
    assert "WindowWidth" not in pydicom.dcmread(chest) and reduced_pixels(pydicom.dcmread(chest), 64) is None
    assert reduced_pixels(pydicom.dcmread(dicom / "pydicom-data" / "RG3_J2KI.dcm"), 1000) is None
    assert reduced_pixels(pydicom.dcmread(dicom / "pydicom-data" / "RG3_J2KI.dcm"), 64, "minmax") is None

    read = run("input.dicom", {"source": str(folder)}, root=str(tmp_path))
    outputs = {}
    for fast in (True, False):
        args = {"metadata": read["metadata"], "files": read["files"], "size": 64, "workers": 1, "fast_decode": fast}
        outputs[fast] = Path(run("transform.dicom_to_images", args, root=str(tmp_path / str(fast)))["images"])
    for name in reduced:
        image = f"_unlabelled/{Path(name).stem}.png"
        fast, full = (np.asarray(Image.open(outputs[flag] / image)).astype(int) for flag in (True, False))
        assert fast.shape == full.shape == (64, 64)
        assert np.abs(fast - full).mean() < 5 and abs(fast.mean() - full.mean()) < 1.5, name


def test_bad_files_are_set_aside_and_thresholds(tmp_path, shared_data):
    folder = tmp_path / "files"
    folder.mkdir()
    ct = shared_data / "dicom" / "pydicom" / "CT_small.dcm"
    shutil.copy(ct, folder / "good.dcm")
    ds = pydicom.dcmread(ct)
    del ds.PixelData
    ds.save_as(folder / "no_pixels.dcm")
    ds = pydicom.dcmread(ct)
    ds.Rows = 60000
    ds.Columns = 60000
    ds.save_as(folder / "bomb.dcm")
    (folder / "text.dcm").write_text("hello")
    ds = pydicom.dcmread(ct)
    ds.file_meta.TransferSyntaxUID = MPEG2MPML  # no decoder for video in pydicom
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" * 8])
    ds.save_as(folder / "mpeg2.dcm")
    metadata = tmp_path / "metadata.csv"
    names = ["good.dcm", "no_pixels.dcm", "bomb.dcm", "text.dcm", "missing.dcm", "mpeg2.dcm"]
    pd.DataFrame({"file": names, "label": ["a"] * len(names)}).to_csv(metadata, index=False)
    args = {"metadata": str(metadata), "files": str(folder), "workers": 2, "max_pixels": 10_000_000}
    result = run("transform.dicom_to_images", args, root=str(tmp_path))
    assert result["images_written"] == 1 and result["files_rejected"] == 5
    reasons = {r["item"]: r["reason"] for r in json.loads(Path(result["manifest"]).read_text())["rejected"]}
    assert set(reasons) == set(names[1:])
    assert "no pixel data" in reasons["no_pixels.dcm"]
    assert "max_pixels" in reasons["bomb.dcm"]
    assert "not found" in reasons["missing.dcm"]
    assert "not decodable" in reasons["mpeg2.dcm"]
    with pytest.raises(ClaimedError, match="^max_rejected: more than 2"):
        run("transform.dicom_to_images", {**args, "max_rejected": 2}, root=str(tmp_path))
    pd.DataFrame({"file": names[1:], "label": ["a"] * 5}).to_csv(metadata, index=False)
    with pytest.raises(ClaimedError, match="^files: none of the 5"):
        run("transform.dicom_to_images", args, root=str(tmp_path))
    with pytest.raises(ClaimedError, match="^size:"):
        run("transform.dicom_to_images", {**args, "size": 3}, root=str(tmp_path))


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_worker_start_methods(tmp_path, shared_data, monkeypatch, method):
    """fork from single-threaded callers; forkserver (what a multi-threaded Airflow task gets) works too."""
    from claimed_airflow.core import pool

    monkeypatch.setattr(pool, "start_method", lambda: method)
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("CT_small.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm"):
        shutil.copy(shared_data / "dicom" / "pydicom" / name, folder)
    pd.DataFrame({"file": sorted(p.name for p in folder.iterdir()), "label": "x"}).to_csv(
        tmp_path / "m.csv", index=False
    )
    args = {"metadata": str(tmp_path / "m.csv"), "files": str(folder), "size": 16, "workers": 2, "shards": True}
    result = run("transform.dicom_to_images", args, root=str(tmp_path))
    assert result["images_written"] == 3 and result["workers"] == 2
    index = pd.read_csv(Path(result["images"]) / "index.csv")
    assert list(index["file"]) == ["CT_small.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm"]  # input order kept


def test_a_crashing_decoder_sets_aside_only_its_file(tmp_path, shared_data, monkeypatch):
    import os

    import claimed_airflow.components.transform.dicom_to_images as module
    from claimed_airflow.core import pool

    real = module._convert

    def crash_on_jpeg2000(job):
        if job["path"].endswith("JPEG2000.dcm"):
            os._exit(1)  # what a segfaulting decoder or the OOM killer does to a worker
        return real(job)

    monkeypatch.setattr(pool, "start_method", lambda: "fork")  # workers inherit the patch
    monkeypatch.setattr(module, "_convert", crash_on_jpeg2000)
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["CT_small.dcm", "JPEG2000.dcm", "MR_small.dcm", "SC_rgb_rle.dcm", "JPGExtended.dcm"]
    for name in names:
        shutil.copy(shared_data / "dicom" / "pydicom" / name, folder)
    pd.DataFrame({"file": names, "label": "x"}).to_csv(tmp_path / "m.csv", index=False)
    args = {"metadata": str(tmp_path / "m.csv"), "files": str(folder), "size": 16, "workers": 2}
    result = run("transform.dicom_to_images", args, root=str(tmp_path))
    assert result["images_written"] == 4
    rejected = json.loads(Path(result["manifest"]).read_text())["rejected"]
    assert [r["item"] for r in rejected] == ["JPEG2000.dcm"] and "worker process died" in rejected[0]["reason"]
