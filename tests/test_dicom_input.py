"""input.dicom: discovery by DICM magic, DICOMDIR, s3:// prefix, label joins, duplicates, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from claimed_airflow.components.input.dicom import read_row
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run

COLUMNS = {
    "file",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "Modality",
    "BodyPartExamined",
    "PatientSex",
    "PatientAge",
    "Rows",
    "Columns",
    "PhotometricInterpretation",
    "TransferSyntaxUID",
    "NumberOfFrames",
}


def _rejected(result) -> dict[str, str]:
    return {r["item"]: r["reason"] for r in json.loads(Path(result["manifest"]).read_text())["rejected"]}


@pytest.fixture
def mixed(tmp_path, shared_data) -> Path:
    """DICOM files without a .dcm suffix, a non-DICOM file named .dcm, a duplicate instance, a hidden file."""
    folder = tmp_path / "mixed"
    (folder / "a" / "b").mkdir(parents=True)
    src = shared_data / "dicom"
    shutil.copy(src / "pydicom" / "CT_small.dcm", folder / "IM0001")
    shutil.copy(src / "pydicom-data" / "emri_small.dcm", folder / "a" / "b" / "series.bin")
    shutil.copy(src / "pydicom-data" / "RG1_J2KI.dcm", folder / "a" / "chest.dcm")
    shutil.copy(src / "pydicom" / "CT_small.dcm", folder / "a" / "copy_of_ct.dcm")
    (folder / "fake.dcm").write_bytes(b"\0" * 128 + b"DICX" + b"\0" * 100)
    (folder / ".hidden.dcm").write_bytes(b"ignored")
    return folder


def test_discovery_by_magic_tags_and_duplicates(tmp_path, mixed):
    result = run("input.dicom", {"source": str(mixed)}, root=str(tmp_path))
    table = pd.read_parquet(result["metadata"]).set_index("file")
    assert sorted(table.index) == ["IM0001", "a/b/series.bin", "a/chest.dcm"]
    assert COLUMNS - {"file"} <= set(table.columns)
    assert table.loc["a/b/series.bin", "NumberOfFrames"] == 10
    assert table.loc["a/chest.dcm", "PhotometricInterpretation"] == "MONOCHROME1"
    assert table.loc["IM0001", "Rows"] == 128 and table.loc["IM0001", "TransferSyntaxUID"] == "1.2.840.10008.1.2.1"
    ct = pydicom.dcmread(mixed / "IM0001")
    assert table.loc["IM0001", "SOPInstanceUID"] == ct.SOPInstanceUID
    assert table.loc["IM0001", "StudyInstanceUID"] == ct.StudyInstanceUID
    assert result["duplicates"] == 1 and result["files_rejected"] == 2
    rejected = _rejected(result)
    assert set(rejected) == {"a/copy_of_ct.dcm", "fake.dcm"}
    assert "duplicate SOPInstanceUID" in rejected["a/copy_of_ct.dcm"] and "IM0001" in rejected["a/copy_of_ct.dcm"]
    assert "DICM" in rejected["fake.dcm"]
    assert (Path(result["files"]) / "a" / "b" / "series.bin").exists()
    assert not (Path(result["files"]) / "a" / "copy_of_ct.dcm").exists()
    kept = run("input.dicom", {"source": str(mixed), "duplicates": "keep"}, root=str(tmp_path / "keep"))
    assert kept["files_read"] == 4 and kept["duplicates"] == 1


def test_labels_joined_by_sop_instance_uid(tmp_path, mixed):
    uid = pydicom.dcmread(mixed / "a" / "chest.dcm").SOPInstanceUID
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"SOPInstanceUID": [uid, "9.9.9"], "finding": ["effusion", "none"]}).to_csv(labels, index=False)
    args = {"source": str(mixed), "labels": str(labels), "label_key": "SOPInstanceUID", "label_column": "finding"}
    table = pd.read_parquet(run("input.dicom", args, root=str(tmp_path))["metadata"]).set_index("file")
    assert table.loc["a/chest.dcm", "label"] == "effusion"
    assert table["label"].isna().sum() == 2
    with pytest.raises(ClaimedError, match="^label_column: column 'label'"):
        run("input.dicom", {**args, "label_column": "label"}, root=str(tmp_path))
    broken = tmp_path / "labels.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ClaimedError, match="^labels: cannot read table"):
        run("input.dicom", {**args, "labels": str(broken)}, root=str(tmp_path))


def test_dicomdir_source(tmp_path, shared_data):
    from pydicom.fileset import FileSet

    fileset = FileSet()
    for name in ("CT_small.dcm", "MR_small.dcm", "JPGExtended.dcm"):
        fileset.add(pydicom.dcmread(shared_data / "dicom" / "pydicom" / name))
    media = tmp_path / "media"
    fileset.write(media)  # PS3.10 file names without a suffix, e.g. PT000000/ST000000/SE000000/IM000000
    (media / "README.txt").write_text("not listed in the DICOMDIR")
    result = run("input.dicom", {"source": str(media / "DICOMDIR")}, root=str(tmp_path))
    table = pd.read_parquet(result["metadata"])
    assert len(table) == 3 and result["files_rejected"] == 0
    assert set(table["Modality"]) == {"CT", "MR", "NM"}
    assert all("/" in name and not name.endswith(".dcm") for name in table["file"])
    folder = run("input.dicom", {"source": str(media)}, root=str(tmp_path / "folder"))
    assert folder["files_read"] == 3  # the DICOMDIR itself is no instance; README.txt is set aside
    assert set(_rejected(folder)) == {"README.txt"}


def test_s3_prefix_source(tmp_path, shared_data, s3_endpoint):
    fs = s3_endpoint
    src = shared_data / "dicom" / "pydicom"
    fs.put(str(src / "CT_small.dcm"), "claimed/dicom/study1/ct")
    fs.put(str(src / "JPGExtended.dcm"), "claimed/dicom/study2/nm.dcm")
    fs.pipe("claimed/dicom/notes.txt", b"hello")
    result = run("input.dicom", {"source": "s3://claimed/dicom"}, root=str(tmp_path))
    table = pd.read_parquet(result["metadata"])
    assert sorted(table["file"]) == ["study1/ct", "study2/nm.dcm"]
    assert set(_rejected(result)) == {"notes.txt"}
    images = run(
        "transform.dicom_to_images",
        {"metadata": result["metadata"], "files": result["files"], "size": 16, "workers": 1},
        root=str(tmp_path),
    )
    assert images["images_written"] == 2


def test_max_rejected(tmp_path, mixed):
    with pytest.raises(ClaimedError, match="^max_rejected: more than 1 file"):
        run("input.dicom", {"source": str(mixed), "max_rejected": 1}, root=str(tmp_path))
    assert run("input.dicom", {"source": str(mixed), "max_rejected": 2}, root=str(tmp_path))["files_read"] == 3


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    ("name", "size", "all_frames"),
    [("pydicom/MR_small_RLE.dcm", 16, True), ("pydicom-data/US1_J2KI.dcm", 64, False)],  # the second: fast_decode
)
def test_reader_and_decoder_never_crash_on_damaged_files(tmp_path, shared_data, name, size, all_frames):
    """Fuzz: truncated and byte-flipped real files are read or set aside with a reason, never a crash."""
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    from claimed_airflow.components.transform.dicom_to_images import convert_file

    data = (shared_data / "dicom" / name).read_bytes()
    target = tmp_path / "fuzz.dcm"
    (tmp_path / "png" / "x").mkdir(parents=True)
    job = {
        "path": str(target),
        "out": str(tmp_path / "png"),
        "folder": "x",
        "stem": "fuzz",
        "size": size,
        "aspect": "stretch",
        "windowing": "dicom",
        "frame": 0,
        "all_frames": all_frames,
        "max_pixels": 1_000_000,
        "shards": False,
        "compress_level": 1,
        "fast_decode": True,
    }
    outcomes = {"read": 0, "rejected": 0}

    @hypothesis.settings(max_examples=120, deadline=None, derandomize=True, database=None)
    @hypothesis.given(
        cut=st.integers(0, len(data)),
        flips=st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=6),
    )
    def check(cut, flips):
        damaged = bytearray(data[:cut])
        for position, value in flips:
            if position < len(damaged):
                damaged[position] = value
        target.write_bytes(bytes(damaged))
        try:
            read_row(target, "fuzz.dcm")
            outcomes["read"] += 1
        except Exception as exc:  # the component turns these into reject(file, reason)
            assert str(exc) or type(exc).__name__
            outcomes["rejected"] += 1
        result = convert_file(job)  # must never raise
        assert set(result) in ({"images"}, {"error"})
        assert "error" not in result or result["error"]

    check()
    assert outcomes["read"] and outcomes["rejected"]
