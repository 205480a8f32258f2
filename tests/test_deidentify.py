"""transform.deidentify: PS3.15 Annex E basic profile, consistent UIDs, kept characteristics, secret salt."""

from __future__ import annotations

import json
import logging
import re
import shutil
import warnings
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset

from claimed_airflow.components.transform.deidentify import basic_profile, profile_action
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run

SALT = "pepper-7f3a9c1e-not-for-logs"


def _walk(ds):
    for elem in ds:
        yield elem
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _walk(item)


@pytest.fixture
def phi_folder(tmp_path, shared_data) -> Path:
    """Two instances of one study with identifying data everywhere, one flagged with burned-in text."""
    folder = tmp_path / "phi" / "Doe^John"  # a folder name that is itself identifying
    folder.mkdir(parents=True)
    a = pydicom.dcmread(shared_data / "dicom" / "pydicom" / "CT_small.dcm")
    b = pydicom.dcmread(shared_data / "dicom" / "pydicom" / "MR_small.dcm")
    b.StudyInstanceUID = a.StudyInstanceUID
    b.BurnedInAnnotation = "YES"
    b.PatientSex = "F"
    a.PatientBirthDate = "19700215"
    del a.PatientAge  # the age in years then comes from birth and study date: 33
    a.AccessionNumber = "ACC-5550123"
    a.ReferringPhysicianName = "Welby^Marcus"
    a.OperatorsName = "Ratched^Mildred"
    a.PatientAddress = "742 Evergreen Terrace"
    a.OtherPatientIDs = "MRN-0099887"
    a.PatientTelephoneNumbers = "555-0100-123"
    a.DeviceSerialNumber = "SN-XR-445566"
    source = Dataset()
    source.ReferencedSOPClassUID = b.SOPClassUID
    source.ReferencedSOPInstanceUID = b.SOPInstanceUID
    a.SourceImageSequence = [source]
    request = Dataset()
    request.RequestedProcedureID = "RP-31337"
    request.ReasonForTheRequestedProcedure = "cough"
    a.RequestAttributesSequence = [request]
    a.add_new(0x60004000, "LT", "overlay note about Doe")
    a.add_new(0x00991010, "LO", "PRIVATE-PHI-VALUE")
    a.add_new(0x00990010, "LO", "ACME_PRIVATE")
    a.save_as(folder / "john_doe_ct.dcm")
    b.save_as(folder / "john_doe_mr.dcm")
    (folder / "notes.txt").write_text("Doe, John: not a DICOM file")
    return folder


def _identifying(paths) -> dict[str, set[str]]:
    """keyword -> original non-empty values of the profile's attributes (anywhere, sequences included)."""
    found: dict[str, set[str]] = {}
    public: set[str] = set()  # values of attributes the profile keeps (e.g. Manufacturer TOSHIBA)
    for path in paths:
        ds = pydicom.dcmread(path)
        for elem in [*_walk(ds), *ds.file_meta]:
            if profile_action(int(elem.tag)) and elem.VR != "SQ" and elem.value not in (None, ""):
                found.setdefault(elem.keyword, set()).add(str(elem.value))
            elif elem.tag.is_private and isinstance(elem.value, str) and elem.value:
                found.setdefault("private", set()).add(elem.value)
            elif elem.VR not in ("SQ", "OB", "OW", "UI"):
                public.add(str(elem.value))
    return {keyword: {v for v in values if not any(v in p for p in public)} for keyword, values in found.items()}


def _measurement(value: str) -> bool:
    """A decimal number such as PatientWeight 0.000000: not identifying text to search output bytes for."""
    try:
        float(value)
    except ValueError:
        return False
    return "." in value


def _outputs(result) -> list[Path]:
    return sorted(Path(result["output"]).glob("*.dcm"))


def test_basic_profile_removes_every_identifying_value(tmp_path, phi_folder, monkeypatch, caplog):
    monkeypatch.setenv("DEID_SALT", SALT)
    originals = sorted(phi_folder.glob("*.dcm"))
    phi = _identifying(originals)
    assert {"PatientName", "PatientID", "StudyInstanceUID", "AccessionNumber", "InstitutionName"} <= set(phi)
    read = run("input.dicom", {"source": str(phi_folder.parent)}, root=str(tmp_path))
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    result = run(
        "transform.deidentify",
        {
            "files": read["files"],
            "metadata": read["metadata"],
            "salt_env": "DEID_SALT",
            "keep_patient_sex": True,
            "burned_in": "keep",
        },
        root=str(tmp_path),
    )
    assert result["files_deidentified"] == 2 and result["burned_in_annotation"] == 1
    outputs = _outputs(result)
    assert len(outputs) == 2
    for path in outputs:
        ds = pydicom.dcmread(path)
        for elem in [*_walk(ds), *ds.file_meta]:
            assert not elem.tag.is_private, path
            if elem.keyword in phi and elem.keyword != "PatientSex":
                assert str(elem.value) not in phi[elem.keyword], (elem.keyword, elem.value)
        assert ds.PatientIdentityRemoved == "YES"
        assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113108"]
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == path.stem
        assert ds.SOPClassUID in ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4")  # classes are kept
        assert ds.pixel_array.size > 0
    # nothing identifying in any byte of any output: files, table, report, manifest, file names, log
    values = {v for kw, vs in phi.items() if kw != "PatientSex" for v in vs if len(v) >= 6 and not _measurement(v)}
    values |= {"Doe^John", "john_doe"}
    blobs = [p.read_bytes() + p.name.encode() for p in outputs]
    blobs += [Path(result[k]).read_bytes() for k in ("table", "report", "manifest")]
    blobs.append(caplog.text.encode())
    for value in values:
        assert not any(value.encode() in blob for blob in blobs), value
    assert not any(SALT.encode() in blob for blob in blobs)
    # UIDs map consistently: one study, the reference from the CT points at the new MR instance
    ct, mr = (pydicom.dcmread(p) for p in outputs)
    if ct.Modality != "CT":
        ct, mr = mr, ct
    assert ct.StudyInstanceUID == mr.StudyInstanceUID and ct.StudyInstanceUID.startswith("2.25.")
    assert ct.SourceImageSequence[0].ReferencedSOPInstanceUID == mr.SOPInstanceUID
    assert all(len(u) <= 64 for u in (ct.SOPInstanceUID, ct.SeriesInstanceUID, ct.FrameOfReferenceUID))
    assert ct.PatientSex == "O" and mr.PatientSex == "F"  # kept when asked
    assert "PatientAge" not in ct and "PatientBirthDate" in ct and ct.PatientBirthDate == ""
    table = pd.read_parquet(result["table"]).set_index("file")
    assert sorted(table.index) == sorted(p.name for p in outputs)
    assert table.loc[f"{ct.SOPInstanceUID}.dcm", "StudyInstanceUID"] == ct.StudyInstanceUID
    assert "PatientSex" in table.columns and "PatientAge" not in table.columns
    report = json.loads(Path(result["report"]).read_text())
    assert report["salt_source"] == "environment variable DEID_SALT"
    assert report["burned_in_annotation"] == [f"{mr.SOPInstanceUID}.dcm"]
    actions = {e["file"]: e for e in report["files"]}[f"{ct.SOPInstanceUID}.dcm"]
    assert {"PatientAddress", "OtherPatientIDs", "RequestAttributesSequence"} <= set(actions["removed"])
    assert "PatientName" in actions["emptied"] and actions["private_removed"] >= 3
    assert {"PatientID", "OperatorsName"} <= set(actions["dummy"])  # Z/D, X/Z/D: a dummy keeps any type valid
    assert ct.DeidentificationMethod.startswith(f"PS3.15 {basic_profile()[0]} E.1 Basic Profile")


def test_uids_are_stable_per_salt_and_options(tmp_path, phi_folder, monkeypatch):
    monkeypatch.setenv("DEID_SALT", SALT)
    monkeypatch.setenv("OTHER_SALT", "something else entirely")
    monkeypatch.setenv("AIRFLOW_CONN_DEID_SALT", json.dumps({"conn_type": "generic", "password": SALT}))

    def uids(**args) -> set[str]:
        root = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"  # one root per run: ad-hoc scopes are per second
        result = run("transform.deidentify", {"files": str(phi_folder), **args}, root=str(root))
        return {p.stem for p in _outputs(result)}, result

    first, _ = uids(salt_env="DEID_SALT", burned_in="keep")
    again, _ = uids(salt_env="DEID_SALT", burned_in="keep")
    by_connection, result = uids(salt_connection="deid_salt", keep_patient_age=True)  # burned_in="reject" by default
    other, _ = uids(salt_env="OTHER_SALT", burned_in="keep")
    assert first == again and len(first) == 2
    assert by_connection < first and len(by_connection) == 1  # the burned-in MR is set aside
    assert not (other & first)
    ct = pydicom.dcmread(_outputs(result)[0])
    assert ct.PatientAge == "033Y" and ct.PatientSex == ""  # age from birth/study date; sex emptied
    rejected = json.loads(Path(result["manifest"]).read_text())["rejected"]
    assert any("BurnedInAnnotation" in r["reason"] for r in rejected)
    assert SALT not in Path(result["manifest"]).read_text()
    with pytest.raises(ClaimedError, match="^salt_env: environment variable MISSING_SALT"):
        run("transform.deidentify", {"files": str(phi_folder), "salt_env": "MISSING_SALT"}, root=str(tmp_path))
    with pytest.raises(ClaimedError, match="^salt_connection: Airflow connection 'nope' is not defined"):
        run("transform.deidentify", {"files": str(phi_folder), "salt_connection": "nope"}, root=str(tmp_path))


def test_deidentified_files_flow_into_dicom_to_images(tmp_path, phi_folder, monkeypatch):
    monkeypatch.setenv("DEID_SALT", SALT)
    shutil.copy(phi_folder / "john_doe_ct.dcm", phi_folder / "same_instance_again.dcm")
    read = run("input.dicom", {"source": str(phi_folder), "duplicates": "keep"}, root=str(tmp_path))
    assert read["files_read"] == 3
    deid = run(
        "transform.deidentify",
        {"files": read["files"], "metadata": read["metadata"], "salt_env": "DEID_SALT", "burned_in": "keep"},
        root=str(tmp_path),
    )
    assert deid["files_deidentified"] == 2  # the repeated instance is set aside, not written twice
    reasons = [r["reason"] for r in json.loads(Path(deid["manifest"]).read_text())["rejected"]]
    assert len(reasons) == 1 and "duplicate SOPInstanceUID" in reasons[0]
    assert len(pd.read_parquet(deid["table"])) == 2
    images = run(
        "transform.dicom_to_images",
        {"metadata": deid["table"], "files": deid["output"], "size": 16, "workers": 1},
        root=str(tmp_path),
    )
    assert images["images_written"] == 2


def test_the_whole_table_e1_1_of_the_newest_edition_applies():
    from claimed_airflow.components.transform.deidentify import Deidentifier

    edition, exact, masked = basic_profile()
    assert edition >= "2024b" and len(exact) > 600 and masked  # the full table, curves/overlays as masks
    ds = Dataset()
    ds.ConsultingPhysicianName = "House^Gregory"  # Z in the table (not in our first, hand-written subset)
    ds.StationAETitle = "CT_ROOM_7"  # X
    ds.SourceSerialNumber = "SRC-123"  # Z
    ds.PatientID = "MRN-1"  # Z/D since 2024b: a dummy value
    ds.add_new(0x50002000, "LO", "curve label")  # repeating group 50xx: X
    ds.Manufacturer = "ACME"  # kept by the profile
    actions = Deidentifier(b"salt", keep_patient_sex=False, keep_patient_age=False).apply(ds)
    assert ds.ConsultingPhysicianName == "" and ds.SourceSerialNumber == "" and ds.PatientID == "ANONYMIZED"
    assert "StationAETitle" not in ds and 0x50002000 not in ds and ds.Manufacturer == "ACME"
    assert {"StationAETitle", "(5000,2000)"} <= set(actions["removed"])


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """The system temporary folder (where runs work) inside tmp_path: a file written by escaping shows there."""
    import tempfile

    folder = tmp_path / "systmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_output_names_never_come_from_input_values(tmp_path, shared_data, private_tmp, monkeypatch, caplog):
    """SOPInstanceUID stored as LO/UT with a path as value; StudyInstanceUID as LO; a UID that is no UID."""
    monkeypatch.setenv("DEID_SALT", SALT)
    (tmp_path / "x").mkdir()
    folder = tmp_path / "in"
    folder.mkdir()
    hostile = {"relative.dcm": ("LO", "../../../../ESCAPED_REL"), "absolute.dcm": ("UT", f"{tmp_path}/x/ESCAPED_ABS")}
    study = pydicom.dcmread(shared_data / "dicom" / "pydicom" / "CT_small.dcm").StudyInstanceUID
    for name, (vr, value) in hostile.items():
        ds = pydicom.dcmread(shared_data / "dicom" / "pydicom" / "CT_small.dcm")
        ds.BurnedInAnnotation = "NO"
        del ds.SOPInstanceUID
        ds.add_new(0x00080018, vr, value)  # SOPInstanceUID under another VR
        del ds.StudyInstanceUID
        ds.add_new(0x0020000D, "LO", study)  # StudyInstanceUID as LO
        ds.add_new(0x00209161, "LO", "not a UID: Doe^John")  # ConcatenationUID, an invalid value
        ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.{len(name)}"
        with warnings.catch_warnings():  # pydicom warns about what the attacker wrote
            warnings.simplefilter("ignore")
            ds.save_as(folder / name, enforce_file_format=True)
    assert pydicom.dcmread(folder / "relative.dcm")[0x00080018].VR == "LO"
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    result = run("transform.deidentify", {"files": str(folder), "salt_env": "DEID_SALT"}, root=str(tmp_path / "out"))
    assert result["files_deidentified"] == 2
    assert [p for p in tmp_path.rglob("*") if "ESCAPED" in p.name] == []  # nothing written outside the task
    assert "ESCAPED" not in caplog.text and "Doe^John" not in caplog.text  # pydicom's warnings would name them
    outputs = _outputs(result)
    assert len(outputs) == 2 and all(re.fullmatch(r"2\.25\.\d+\.dcm", p.name) for p in outputs)
    studies = set()
    for path in outputs:
        data = path.read_bytes()
        for value in (b"ESCAPED", study.encode(), b"Doe^John", b"not a UID"):
            assert value not in data, value
        ds = pydicom.dcmread(path)
        assert ds[0x00080018].VR == "UI" and ds.SOPInstanceUID == path.stem == ds.file_meta.MediaStorageSOPInstanceUID
        assert ds[0x0020000D].VR == "UI" and ds.StudyInstanceUID.startswith("2.25.")
        assert ds.ConcatenationUID.startswith("2.25.")
        studies.add(ds.StudyInstanceUID)
    assert len(studies) == 1  # one study in, one study out
    assert "ESCAPED" not in Path(result["report"]).read_text() + Path(result["manifest"]).read_text()


def test_every_name_date_and_time_is_identifying_and_dates_can_shift(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("DEID_SALT", SALT)
    folder = tmp_path / "in"
    folder.mkdir()
    files = (("a.dcm", "P1", "20200115"), ("b.dcm", "P1", "20200301"), ("c", "P2", ""))
    for number, (name, patient, study_date) in enumerate(files):
        ds = pydicom.dcmread(shared_data / "dicom" / "pydicom" / "CT_small.dcm")
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.1{number}"
        ds.PatientID, ds.StudyDate, ds.BurnedInAnnotation = patient, study_date or "20210704", "NO"
        ds.SecondaryReviewerName = "Reviewer^Rita"  # PN attributes the profile does not list
        ds.EvaluatorName = "Evaluator^Eve"
        ds.ExpiryDate = "20301231"  # DA, not in the table: emptied, also when dates shift
        ds.StudyUpdateDateTime = "20200116083000.5+0100"  # DT, not in the table
        ds.AcquisitionDate = "20301231"  # DA in the table: shifted with shift_dates
        ds.AcquisitionDateTime = "20200116083000.5+0100"  # DT in the table
        ds.InstanceCreationTime = "101500"  # TM
        ds.add_new(0x00731234, "LO", "unknown public tag: Doe")  # not in the dictionary
        item = Dataset()
        item.VerifyingObserverName = "Observer^Otto"
        item.ObservationDateTime = "20200117120000"
        item.add_new(0x0040A075, "LO", "Stored^AsLO")  # VerifyingObserverName again, stored as LO: still a PN
        ds.VerifyingObserverSequence = [item]
        ds.save_as(folder / name, enforce_file_format=True)
    result = run("transform.deidentify", {"files": str(folder), "salt_env": "DEID_SALT"}, root=str(tmp_path / "r1"))
    outputs = _outputs(result)
    assert len(outputs) == 3
    for path in outputs:
        data = path.read_bytes()
        for value in (b"Rita", b"Eve", b"Otto", b"AsLO", b"20301231", b"2020011608", b"101500", b"unknown public"):
            assert value not in data, value
        ds = pydicom.dcmread(path)
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
        assert ds.SecondaryReviewerName == "" and ds.ExpiryDate == "" and ds.StudyUpdateDateTime == ""
        assert ds.VerifyingObserverSequence[0].ObservationDateTime in ("", "19000101000000") and 0x00731234 not in ds
    shifted = run(
        "transform.deidentify",
        {"files": str(folder), "salt_env": "DEID_SALT", "shift_dates": True},
        root=str(tmp_path / "r2"),
    )
    shifts = {}  # original study date -> days moved
    for path in _outputs(shifted):
        ds = pydicom.dcmread(path)
        assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
        assert "113107" in [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
        assert ds.SecondaryReviewerName == "" and ds.VerifyingObserverSequence[0].VerifyingObserverName == "ANONYMIZED"
        assert ds.ExpiryDate == "" and ds.StudyUpdateDateTime == ""  # no action in the table: the allow-list
        days = (_day(ds.AcquisitionDate) - _day("20301231")).days
        assert -3652 <= days <= -1
        shifts[(_day(ds.StudyDate) - timedelta(days=days)).strftime("%Y%m%d")] = days
        # DT: the date part moves, the time and offset stay; TM stays: intervals are exact
        assert ds.AcquisitionDateTime == (_day("20200116") + timedelta(days=days)).strftime("%Y%m%d") + "083000.5+0100"
        item = ds.VerifyingObserverSequence[0]
        assert item.ObservationDateTime == (_day("20200117") + timedelta(days=days)).strftime("%Y%m%d") + "120000"
        assert ds.InstanceCreationTime == "101500"
    assert sorted(shifts) == ["20200115", "20200301", "20210704"]
    assert shifts["20200115"] == shifts["20200301"] != shifts["20210704"]  # one shift per patient


def _day(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def test_files_that_may_show_text_in_the_pixels_are_set_aside_unless_kept(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("DEID_SALT", SALT)
    folder = tmp_path / "in"
    folder.mkdir()
    cases = {  # file: (attributes, set aside by default)
        "flagged.dcm": ({"BurnedInAnnotation": "YES"}, True),
        "face.dcm": ({"BurnedInAnnotation": "NO", "RecognizableVisualFeatures": "YES"}, True),
        "us_unflagged.dcm": ({"Modality": "US"}, True),
        "sc_unflagged.dcm": ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, True),
        "us_clean.dcm": ({"Modality": "US", "BurnedInAnnotation": "NO"}, False),
        "ct_unflagged.dcm": ({}, False),
    }
    for number, (name, (attributes, _)) in enumerate(cases.items()):
        ds = pydicom.dcmread(shared_data / "dicom" / "pydicom" / "CT_small.dcm")
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{number + 1}"
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        ds.save_as(folder / name, enforce_file_format=True)
    result = run("transform.deidentify", {"files": str(folder), "salt_env": "DEID_SALT"}, root=str(tmp_path / "r1"))
    assert result["files_deidentified"] == 2 and result["burned_in_annotation"] == 0
    reasons = sorted(r["reason"].split(":")[0] for r in json.loads(Path(result["manifest"]).read_text())["rejected"])
    assert reasons == [
        "BurnedInAnnotation = YES",
        "RecognizableVisualFeatures = YES",
        "no BurnedInAnnotation flag on a Secondary Capture Image Storage image",
        "no BurnedInAnnotation flag on a US image",
    ]
    kept = run(
        "transform.deidentify",
        {"files": str(folder), "salt_env": "DEID_SALT", "burned_in": "keep"},
        root=str(tmp_path / "r2"),
    )
    assert kept["files_deidentified"] == 6 and kept["burned_in_annotation"] == 4
    assert len(json.loads(Path(kept["report"]).read_text())["burned_in_annotation"]) == 4


def _corpus():
    """tests/data/deid/corpus.py: the hostile corpus (a plain module, also run by the tool benchmark)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("deid_corpus", Path(__file__).parent / "data" / "deid" / "corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _everything(result, caplog) -> list[bytes]:
    """Every byte a run leaves: output files and their names, table, report, manifest, the log."""
    blobs = [p.read_bytes() + p.name.encode() for p in Path(result["output"]).rglob("*") if p.is_file()]
    blobs += [Path(result[k]).read_bytes() for k in ("table", "report", "manifest")]
    return [*blobs, caplog.text.encode()]


@pytest.mark.parametrize(
    "options",
    [{}, {"shift_dates": True, "keep_patient_age": True, "keep_patient_sex": True}],
    ids=["defaults", "dates-shifted-characteristics-kept"],
)
def test_hostile_corpus_leaks_no_planted_value_anywhere(tmp_path, monkeypatch, caplog, options):
    """PHI in every text VR, sequences, SR content, private tags, preamble, file meta, URLs, dates, ages, pixels."""
    corpus = _corpus()
    monkeypatch.setenv("DEID_SALT", SALT)
    planted = corpus.build(tmp_path / "in")
    assert len(planted) > 100
    assert {a for a, _ in corpus.overlaps(planted)} == {"StudyInstanceUID"}  # only inside the URLs that quote it
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    result = run("transform.deidentify", {"files": str(tmp_path / "in"), "salt_env": "DEID_SALT", **options})
    assert result["files_deidentified"] == 2  # the CT and the report; the 8 images that may show text are set aside
    rejected = json.loads(Path(result["manifest"]).read_text())["rejected"]
    assert len(rejected) == 8
    expected = dict(planted)
    if options.get("shift_dates"):  # times of day are kept with moved dates (intervals exact), by design
        expected = {k: v for k, v in planted.items() if "(TM" not in k}
    assert corpus.leaks(expected, _everything(result, caplog)) == {}
    ct, sr = sorted((pydicom.dcmread(p) for p in _outputs(result)), key=lambda ds: ds.Modality)
    assert ct.preamble == sr.preamble == b"\0" * 128
    assert ct.Modality == "CT" and ct.AnatomicRegionSequence[0].CodeMeaning == "Chest"  # allow-listed: kept
    assert ct.AnatomicRegionSequence[0].AnatomicRegionModifierSequence[0].ExtendedCodeValue == ""  # two levels deep
    if options:
        assert ct.PatientAge == "090Y" and ct.PatientBirthDate == ""  # 95: the age and no date that gives it
        assert "DateOfLastCalibration" not in ct and "DateOfManufacture" not in ct  # device dates: removed
        assert ct.StudyDate not in ("", "20260117") and ct.PatientSex == "M"
        assert pd.read_parquet(result["table"])["PatientAge"].max() == 90


def test_structured_content_keeps_codes_and_drops_text(tmp_path, monkeypatch):
    """A Basic Text SR: report text, title, contact and the RetrieveURL with the original study UID go; codes stay."""
    corpus = _corpus()
    monkeypatch.setenv("DEID_SALT", SALT)
    corpus.build(tmp_path / "in")
    folder = tmp_path / "sr"
    folder.mkdir()
    (tmp_path / "in" / "report_smithson.dcm").rename(folder / "report.dcm")
    cleaned = run("transform.deidentify", {"files": str(folder), "salt_env": "DEID_SALT"}, root=str(tmp_path / "a"))
    (sr,) = (pydicom.dcmread(p) for p in _outputs(cleaned))
    items = {item.ValueType: item for item in sr.ContentSequence}
    assert items["TEXT"].TextValue == "" and items["TEXT"].ConceptNameCodeSequence[0].CodeMeaning == "Finding"
    assert items["CODE"].ConceptCodeSequence[0].CodeMeaning == "Pneumonia"  # coded concepts are kept
    assert items["UIDREF"].UID.startswith("2.25.")
    assert sr.DocumentTitle == "" and sr.ContactDisplayName == "" and sr.RetrieveURL == ""
    assert "113104" in [c.CodeValue for c in sr.DeidentificationMethodCodeSequence]
    removed = run(
        "transform.deidentify",
        {"files": str(folder), "salt_env": "DEID_SALT", "clean_structured_content": False},
        root=str(tmp_path / "b"),
    )
    (sr,) = (pydicom.dcmread(p) for p in _outputs(removed))
    assert len(sr.ContentSequence) == 0
    assert "113104" not in [c.CodeValue for c in sr.DeidentificationMethodCodeSequence]


def test_allow_list_rules_on_single_datasets():
    """Kept text must fit its VR; a UID quoted in kept text gets the same new UID; safe private tags are kept."""
    from claimed_airflow.components.transform.deidentify import Deidentifier

    ds = Dataset()
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.4711.1"
    with warnings.catch_warnings():  # pydicom warns about the invalid values written here on purpose
        warnings.simplefilter("ignore")
        ds.BodyPartExamined = "chest of smith"  # not a CS value: a safe attribute with a hostile value is emptied
        ds.PatientSex = "SMITH"  # kept characteristics only with a value the standard defines
        ds.PatientAge = "JOHN"  # no age in years: removed, not kept
        ds.Manufacturer = "ACME " * 13  # 65 characters: over LO's 64, emptied although Manufacturer is safe
    ds.Modality = "MR"
    ds.ManufacturerModelName = "Scanner 3000"
    ds.SeriesType = "SMITHSERIES"  # CS without an action: not on the allow-list
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "1", "99LOCAL"
    code.CodeMeaning = "prior study 1.2.826.0.1.3680043.10.4711.1"
    ds.ConceptNameCodeSequence = [code]
    block = ds.private_block(0x0019, "ACME 1.0", create=True)
    block.add_new(0x0B, "DS", "12.5")
    block.add_new(0x0C, "LO", "SMITH PRIVATE")
    worker = Deidentifier(
        b"s" * 16, keep_patient_sex=True, keep_patient_age=True, retain_safe_private=["0019,xx0B,ACME 1.0"]
    )
    actions = worker.apply(ds)
    assert ds.BodyPartExamined == "" and ds.Modality == "MR" and ds.SeriesType == ""
    assert ds.Manufacturer == "" and ds.ManufacturerModelName == "Scanner 3000"
    assert ds.PatientSex == "" and "PatientAge" not in ds
    assert ds.ConceptNameCodeSequence[0].CodeMeaning == f"prior study {ds.StudyInstanceUID}"
    assert ds[0x0019100B].value == 12.5 and ds[0x00190010].value == "ACME 1.0" and 0x0019100C not in ds
    assert actions["private_kept"] == 2 and actions["private_removed"] == 1
    assert "113111" in [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
    with pytest.raises(ClaimedError, match="^retain_safe_private: '0019,0B,ACME' is not 'gggg,xxee,CREATOR'"):
        Deidentifier(b"s" * 16, False, False, retain_safe_private=["0019,0B,ACME"])


@pytest.mark.parametrize("salt", ["pepper", "aaaaaaaaaaaaaaaaaaaaaaaa"], ids=["short", "plain"])
def test_a_weak_salt_is_refused_naming_where_it_came_from(tmp_path, phi_folder, monkeypatch, salt):
    monkeypatch.setenv("WEAK_SALT", salt)
    with pytest.raises(ClaimedError, match="^salt_env: the salt of environment variable WEAK_SALT is too weak"):
        run("transform.deidentify", {"files": str(phi_folder), "salt_env": "WEAK_SALT"}, root=str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_WEAK_SALT", json.dumps({"conn_type": "generic", "password": salt}))
    with pytest.raises(ClaimedError, match="^salt_connection: the salt of Airflow connection weak_salt is too weak"):
        run("transform.deidentify", {"files": str(phi_folder), "salt_connection": "weak_salt"}, root=str(tmp_path))


def test_only_an_explicit_no_clears_images_that_often_show_text():
    from claimed_airflow.components.transform.deidentify import burned_in_text

    def reason(**attributes) -> str:
        ds = Dataset()
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        return burned_in_text(ds)

    us, video = "1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.77.1.4.1"
    assert reason(Modality="US", BurnedInAnnotation="UNKNOWN") == "BurnedInAnnotation is not NO on a US image"
    assert reason(Modality="US", BurnedInAnnotation="N") and reason(Modality="OP")
    assert reason(SOPClassUID=video) == "no BurnedInAnnotation flag on a Video Photographic Image Storage image"
    assert reason(SOPClassUID="1.2.840.10008.5.1.4.1.1.77.1.1.1") and reason(SOPClassUID=us)
    assert reason(SOPClassUID="1.2.840.10008.5.1.4.1.1.77.1.5.1", Modality="OP", BurnedInAnnotation="SMITH") == (
        "BurnedInAnnotation is not NO on a OP image"  # a hostile flag value is never quoted
    )
    assert reason(Modality="US", BurnedInAnnotation="NO") == reason(SOPClassUID=video, BurnedInAnnotation="NO") == ""
    assert reason(Modality="CT") == "" and reason(Modality="CT", BurnedInAnnotation="YES")


def _us_with_text(path: Path, text: str) -> None:
    """An 8-bit ultrasound image (no BurnedInAnnotation flag) with a name burned into its pixels."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    image = Image.new("L", (320, 240), 20)
    draw = ImageDraw.Draw(image)
    draw.ellipse((80, 60, 240, 200), fill=120)  # the anatomy, which stays
    draw.text((8, 8), text, fill=255, font=ImageFont.load_default(size=14))
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = (
        "1.2.840.10008.5.1.4.1.1.6.1",
        "1.2.826.0.1.3680043.10.4711.9",
        "US",
    )
    ds.PatientName, ds.StudyInstanceUID = "Smithson^Rowan", "1.2.826.0.1.3680043.10.4711.1"
    ds.set_pixel_data(np.asarray(image), "MONOCHROME2", 8)
    ds.save_as(path, enforce_file_format=True)


def _ocr_words(pixels, tmp_path: Path) -> str:
    import subprocess

    from PIL import Image

    Image.fromarray(pixels).resize((640, 480)).save(tmp_path / "check.png")
    found = subprocess.run(
        ["tesseract", str(tmp_path / "check.png"), "-", "--psm", "11"], capture_output=True, text=True
    )
    return found.stdout


@pytest.mark.skipif(
    shutil.which("tesseract") is None, reason="needs the tesseract command (apt-get install tesseract-ocr)"
)
def test_burned_in_text_is_redacted_by_ocr_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("DEID_SALT", SALT)
    folder = tmp_path / "in"
    folder.mkdir()
    _us_with_text(folder / "us.dcm", "SMITHSON ROWAN MRN884711")
    before = pydicom.dcmread(folder / "us.dcm").pixel_array
    assert "MRN884711" in _ocr_words(before, tmp_path)  # the check can see the text it then misses
    with pytest.raises(ClaimedError, match="^files: no DICOM file could be de-identified"):  # reject: set aside
        run("transform.deidentify", {"files": str(folder), "salt_env": "DEID_SALT"}, root=str(tmp_path / "a"))
    result = run(
        "transform.deidentify",
        {"files": str(folder), "salt_env": "DEID_SALT", "burned_in": "redact"},
        root=str(tmp_path / "b"),
    )
    (path,) = _outputs(result)
    after = pydicom.dcmread(path).pixel_array
    assert "MRN884711" not in _ocr_words(after, tmp_path) and "SMITHSON" not in _ocr_words(after, tmp_path)
    assert (after[6:26, 8:200] == after[6:26, 8:200].min()).mean() > 0.9  # the text's rows are blacked out
    assert (after[100:160, 120:200] == before[100:160, 120:200]).all()  # the anatomy is untouched
    (entry,) = json.loads(Path(result["report"]).read_text())["files"]
    assert entry["ocr_words_redacted"] >= 2 and entry["burned_in_annotation"] is True
    assert "MRN884711" not in Path(result["report"]).read_text() + Path(result["manifest"]).read_text()
    monkeypatch.setattr("claimed_airflow.components.transform.deidentify.OCR_COMMAND", "no-such-tesseract")
    with pytest.raises(ClaimedError, match="^burned_in: 'redact' needs the tesseract command"):
        run(
            "transform.deidentify",
            {"files": str(folder), "salt_env": "DEID_SALT", "burned_in": "redact"},
            root=str(tmp_path / "c"),
        )
