"""PACS in, PACS out against a real Orthanc: DICOMweb (QIDO/WADO/STOW-RS) and DIMSE (C-FIND/C-GET/C-STORE)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run
from claimed_airflow.core.storage import Scope, safe_name
from tests import orthanc
from tests.flagship import FLAGSHIP_FAST

pytest.importorskip("dicomweb_client")
pytest.importorskip("pynetdicom")
if not orthanc.available():
    pytest.skip(f"Orthanc is not installed ({orthanc.INSTALL})", allow_module_level=True)

CONN = "pacs_test"
DIMSE_CONN = "pacs_dimse_test"


def shared_files(shared_data: Path) -> list[Path]:
    return sorted(p for p in (shared_data / "dicom").rglob("*.dcm") if p.is_file())


def expected_instances(files: list[Path]) -> dict[str, pydicom.Dataset]:
    """SOPInstanceUID -> header of the file Orthanc keeps (the first one sent with that UID)."""
    found: dict[str, pydicom.Dataset] = {}
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found.setdefault(str(ds.SOPInstanceUID), ds)
    return found


@pytest.fixture
def pacs(tmp_path, shared_data, monkeypatch):
    """A running Orthanc holding the shared DICOM files; connections ``pacs_test`` and ``pacs_dimse_test``."""
    with orthanc.Orthanc(tmp_path / "orthanc") as server:
        server.upload(*shared_files(shared_data))
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", server.connection())
        monkeypatch.setenv(f"AIRFLOW_CONN_{DIMSE_CONN.upper()}", server.dimse_connection())
        yield server


def _table(result: dict) -> pd.DataFrame:
    return pd.read_parquet(result["metadata"])


def test_retrieve_everything_every_transfer_syntax_decodable(tmp_path, pacs, shared_data):
    expected = expected_instances(shared_files(shared_data))
    result = run("input.dicomweb", {"conn_id": CONN, "level": "instance"}, root=str(tmp_path / "out"))
    table = _table(result)
    assert sorted(table["SOPInstanceUID"]) == sorted(expected)
    syntaxes = {uid: str(ds.file_meta.TransferSyntaxUID) for uid, ds in expected.items()}
    assert dict(zip(table["SOPInstanceUID"], table["TransferSyntaxUID"], strict=True)) == syntaxes  # as stored
    assert len(set(syntaxes.values())) >= 8  # the shared files cover many encodings
    for row in table.to_dict("records"):
        assert row["file"] == f"{__import__('hashlib').sha256(row['SOPInstanceUID'].encode()).hexdigest()[:32]}.dcm"
        ds = pydicom.dcmread(Path(result["files"]) / row["file"])
        if row["HasPixelData"]:
            assert ds.pixel_array.size > 0, row["TransferSyntaxUID"]  # decodable
    assert result["files_read"] == len(expected) and result["files_rejected"] == 0


@pytest.mark.parametrize("level", ["study", "series", "instance"])
def test_search_filters_at_each_level(tmp_path, pacs, shared_data, level):
    expected = expected_instances(shared_files(shared_data))
    mr = sorted(uid for uid, ds in expected.items() if ds.get("Modality") == "MR")
    result = run("input.dicomweb", {"conn_id": CONN, "level": level, "modality": "MR"}, root=str(tmp_path))
    if level == "study":  # every instance of the studies with an MR series
        studies = {str(expected[uid].StudyInstanceUID) for uid in mr}
        mr = sorted(uid for uid, ds in expected.items() if str(ds.StudyInstanceUID) in studies)
    assert sorted(_table(result)["SOPInstanceUID"]) == mr and mr


def test_filters_date_range_accession_body_part_and_any_attribute(tmp_path, pacs, shared_data):
    expected = expected_instances(shared_files(shared_data))
    dated = {uid: str(ds.StudyDate) for uid, ds in expected.items() if ds.get("StudyDate")}
    first = min(dated.values())
    in_range = sorted(uid for uid, date in dated.items() if first <= date <= first[:4] + "1231")
    args = {"conn_id": CONN, "level": "instance", "study_date": f"{first}-{first[:4]}1231"}
    assert sorted(_table(run("input.dicomweb", args, root=str(tmp_path)))["SOPInstanceUID"]) == in_range
    accession = next((ds for ds in expected.values() if ds.get("AccessionNumber")), None)
    if accession is not None:
        args = {"conn_id": CONN, "accession_number": str(accession.AccessionNumber)}
        table = _table(run("input.dicomweb", args, root=str(tmp_path)))
        assert str(accession.SOPInstanceUID) in set(table["SOPInstanceUID"])
    part = next(ds for ds in expected.values() if ds.get("BodyPartExamined"))
    args = {"conn_id": CONN, "level": "series", "body_part": str(part.BodyPartExamined)}
    table = _table(run("input.dicomweb", args, root=str(tmp_path)))
    assert set(table["BodyPartExamined"]) == {str(part.BodyPartExamined)}
    args = {"conn_id": CONN, "level": "instance", "filters": {"SOPInstanceUID": str(part.SOPInstanceUID)}}
    assert list(_table(run("input.dicomweb", args, root=str(tmp_path)))["SOPInstanceUID"]) == [part.SOPInstanceUID]
    with pytest.raises(ClaimedError, match="^body_part: BodyPartExamined is a series attribute"):
        run("input.dicomweb", {"conn_id": CONN, "level": "study", "body_part": "CHEST"}, root=str(tmp_path))
    with pytest.raises(ClaimedError, match="^study_date: expected YYYYMMDD"):
        run("input.dicomweb", {"conn_id": CONN, "study_date": "2020-01-01"}, root=str(tmp_path))
    with pytest.raises(ClaimedError, match="^filters: '../x' is not a DICOM keyword"):
        run("input.dicomweb", {"conn_id": CONN, "filters": {"../x": "1"}}, root=str(tmp_path))


def test_input_dicom_takes_a_pacs_query_uri_with_labels_by_uid(tmp_path, pacs, shared_data):
    expected = expected_instances(shared_files(shared_data))
    ct = sorted(uid for uid, ds in expected.items() if ds.get("Modality") == "CT")
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"SOPInstanceUID": ct, "label": [f"c{i}" for i in range(len(ct))]}).to_csv(labels, index=False)
    args = {"source": f"dicomweb://{CONN}?modality=CT", "labels": str(labels), "label_key": "SOPInstanceUID"}
    result = run("input.dicom", args, root=str(tmp_path))
    table = _table(result)
    assert sorted(table["SOPInstanceUID"]) == ct and table["label"].notna().all()
    manifest = json.loads(Path(result["manifest"]).read_text())
    assert manifest["inputs"]["source"]["uri"].startswith(f"dicomweb://{CONN}?modality=")  # values may be redacted


def test_a_url_without_connection_takes_credentials_from_the_environment(tmp_path, pacs, monkeypatch):
    source = {"source": "dicomweb+" + pacs.dicomweb_url + "?modality=CT"}
    monkeypatch.setenv("CLAIMED_PACS_ALLOWED_HOSTS", "127.0.0.1")  # a host in a URI must be allowed
    with pytest.raises(ClaimedError, match="refused the credentials"):
        run("input.dicom", source, root=str(tmp_path))
    monkeypatch.setenv("DICOMWEB_URL", pacs.dicomweb_url)  # the environment's credentials go there only
    monkeypatch.setenv("DICOMWEB_ALLOW_HTTP", "true")  # loopback
    monkeypatch.setenv("DICOMWEB_USERNAME", orthanc.USER)
    monkeypatch.setenv("DICOMWEB_PASSWORD", pacs.password)
    assert set(_table(run("input.dicom", source, root=str(tmp_path)))["Modality"]) == {"CT"}
    args = {"conn_id": "", "url": pacs.dicomweb_url, "modality": "CT"}
    assert run("input.dicomweb", args, root=str(tmp_path))["files_read"] >= 1
    args = {"url": pacs.dicomweb_url, "modality": "CT"}  # the default connection is not defined: the environment
    assert run("input.dicomweb", args, root=str(tmp_path))["files_read"] >= 1


def test_dimse_find_get_and_store(tmp_path, pacs, shared_data):
    expected = expected_instances(shared_files(shared_data))
    result = run("input.dicom_network", {"conn_id": DIMSE_CONN, "level": "study"}, root=str(tmp_path))
    table = _table(result)
    assert sorted(table["SOPInstanceUID"]) == sorted(expected)
    syntaxes = {uid: str(ds.file_meta.TransferSyntaxUID) for uid, ds in expected.items()}
    assert dict(zip(table["SOPInstanceUID"], table["TransferSyntaxUID"], strict=True)) == syntaxes  # no transcoding
    for row in table[table["HasPixelData"]].to_dict("records"):
        assert pydicom.dcmread(Path(result["files"]) / row["file"]).pixel_array.size > 0
    ct = run("input.dicom_network", {"address": pacs.address, "modality": "CT"}, root=str(tmp_path))
    assert set(_table(ct)["Modality"]) == {"CT"}
    # C-STORE the SRs of a prediction table, then find them with C-FIND
    sr = _write_sr(tmp_path, ct, "sr")
    stored = run("output.dicom_network", {"dicom": sr["dicom"], "conn_id": DIMSE_CONN}, root=str(tmp_path))
    assert stored["instances_stored"] == sr["dicom_written"] > 0
    found = run("input.dicom_network", {"conn_id": DIMSE_CONN, "modality": "SR"}, root=str(tmp_path / "sr"))
    index = pd.read_csv(Path(sr["dicom"]) / "index.csv")
    assert sorted(_table(found)["SOPInstanceUID"]) == sorted(index["SOPInstanceUID"])


def _write_sr(tmp_path: Path, read: dict, kind: str) -> dict:
    table = _table(read)
    table["prediction"] = ["COVID-19" if i % 2 else "No Finding" for i in range(len(table))]
    table["score"] = 0.75
    path = tmp_path / f"predictions-{kind}.csv"
    table.to_csv(path, index=False)
    args = {"predictions": str(path), "files": read["files"], "kind": kind, "model_name": "pacs test model"}
    return run("output.dicom", args, root=str(tmp_path / kind))


@pytest.mark.parametrize("kind", ["sr", "sc"])
def test_stow_results_found_by_qido_linked_to_the_source_study_and_not_duplicated(tmp_path, pacs, kind):
    read = run("input.dicomweb", {"conn_id": CONN, "modality": "CT"}, root=str(tmp_path))
    results = _write_sr(tmp_path, read, kind)
    index = pd.read_csv(Path(results["dicom"]) / "index.csv")
    before = pacs.statistics()["CountInstances"]
    stored = run("output.dicomweb", {"dicom": results["dicom"], "conn_id": CONN}, root=str(tmp_path))
    assert stored["instances_stored"] == len(index) and stored["instances_failed"] == 0
    assert pacs.statistics()["CountInstances"] == before + len(index)
    again = run("output.dicomweb", {"dicom": results["dicom"], "conn_id": CONN}, root=str(tmp_path))
    assert again["instances_stored"] == len(index)
    assert pacs.statistics()["CountInstances"] == before + len(index)  # the same UIDs: no duplicates
    modality = "SR" if kind == "sr" else "OT"
    for row in index.to_dict("records"):
        args = {"conn_id": CONN, "level": "instance", "filters": {"SOPInstanceUID": row["SOPInstanceUID"]}}
        found = _table(run("input.dicomweb", args, root=str(tmp_path / "qido")))
        assert list(found["StudyInstanceUID"]) == [row["StudyInstanceUID"]]  # in the source's study
        assert found["Modality"].iloc[0] == modality or kind == "sc"
        assert (found["SOPClassUID"] == row["SOPClassUID"]).all()


def test_output_dicom_stores_in_the_destination_pacs(tmp_path, pacs):
    read = run("input.dicomweb", {"conn_id": CONN, "modality": "MR"}, root=str(tmp_path))
    table = _table(read)
    table["prediction"] = "No Finding"
    table.to_csv(tmp_path / "p.csv", index=False)
    args = {"predictions": str(tmp_path / "p.csv"), "files": read["files"], "destination": f"dicomweb://{CONN}"}
    result = run("output.dicom", args, root=str(tmp_path))
    assert result["instances_stored"] == result["dicom_written"] == len(table)
    found = run("input.dicomweb", {"conn_id": CONN, "modality": "SR"}, root=str(tmp_path / "found"))
    assert found["files_read"] == len(table)
    with pytest.raises(ClaimedError, match="^destination: 'ftp://x' is not a dicomweb://"):
        run("output.dicom", {**args, "destination": "ftp://x"}, root=str(tmp_path))


def test_a_retry_fetches_only_the_missing_instances(tmp_path, pacs, monkeypatch):
    import requests

    from claimed_airflow.pacs import dicomweb

    monkeypatch.setattr(dicomweb, "backoff", lambda *a: None)
    calls = []
    original = dicomweb._instance_bytes

    def failing_after_five(client, server, instance, *args):  # the PACS goes away after five instances
        calls.append(instance.sop)
        if len(calls) > 5:
            raise requests.ConnectionError("connection refused")
        return original(client, server, instance, *args)

    scope = Scope(dag_id="pacs", run_id="retry", task_id="input")
    args = {"conn_id": CONN, "level": "instance", "concurrency": 1}
    monkeypatch.setattr(dicomweb, "_instance_bytes", failing_after_five)
    with pytest.raises(ClaimedError, match=rf"^conn_id: cannot reach DICOMweb server {pacs.dicomweb_url} "):
        run("input.dicomweb", args, root=str(tmp_path), scope=scope)
    task = tmp_path / "pacs" / "retry" / "input"
    assert not (task / "files").exists() and not (task / "manifest.json").exists()  # nothing half-written
    assert not list(task.rglob("*.part"))
    fetched_before = set(calls[:5])
    calls.clear()
    monkeypatch.setattr(dicomweb, "_instance_bytes", lambda c, s, i, *a: calls.append(i.sop) or original(c, s, i, *a))
    result = run("input.dicomweb", args, root=str(tmp_path), scope=scope)
    assert result["instances_reused"] == 5
    assert not fetched_before & set(calls) and len(calls) == result["files_read"] - 5  # only what was missing
    assert not [p for p in task.iterdir() if p.name.startswith(".partial")]  # consumed


def test_pacs_down_is_a_clear_error_after_retries_and_writes_nothing(tmp_path, pacs, monkeypatch, caplog):
    import time

    monkeypatch.setattr(time, "sleep", lambda s: None)
    pacs.stop()
    scope = Scope(dag_id="pacs", run_id="down", task_id="input")
    with caplog.at_level(logging.WARNING, logger="claimed_airflow"):
        with pytest.raises(
            ClaimedError, match=rf"^conn_id: cannot reach DICOMweb server {pacs.dicomweb_url} .*3 tries"
        ):
            run("input.dicomweb", {"conn_id": CONN}, root=str(tmp_path), scope=scope)
    assert "retrying" in caplog.text
    assert not (tmp_path / "pacs" / "down" / "input").exists() or not any(
        p.name in ("files", "metadata.parquet", "manifest.json")
        for p in (tmp_path / "pacs" / "down" / "input").iterdir()
    )
    with pytest.raises(ClaimedError, match=rf"^conn_id: cannot reach DICOM peer {pacs.address} after 3 tries"):
        run("input.dicom_network", {"conn_id": DIMSE_CONN}, root=str(tmp_path))
    folder = tmp_path / "sr"
    folder.mkdir()
    with pytest.raises(ClaimedError, match="^dicom: no DICOM file in"):
        run("output.dicomweb", {"dicom": str(folder), "conn_id": CONN}, root=str(tmp_path))


def test_refused_credentials_and_association_name_the_server_not_the_secret(tmp_path, pacs, monkeypatch):
    wrong = json.loads(pacs.connection())
    wrong["password"] = "not-the-password"
    monkeypatch.setenv("AIRFLOW_CONN_PACS_WRONG", json.dumps(wrong))
    with pytest.raises(
        ClaimedError, match=rf"^conn_id: {pacs.dicomweb_url} refused the credentials .*HTTP 401"
    ) as info:
        run("input.dicomweb", {"conn_id": "pacs_wrong"}, root=str(tmp_path))
    assert "not-the-password" not in str(info.value)
    address = pacs.address.replace(orthanc.AE_TITLE, "NOT_THE_PACS")
    with pytest.raises(ClaimedError, match="^conn_id: DICOM peer NOT_THE_PACS@.* rejected the association"):
        run("input.dicom_network", {"address": address}, root=str(tmp_path))
    with pytest.raises(ClaimedError, match="^source: put credentials in an Airflow connection"):
        run("input.dicom", {"source": f"dicomweb+http://u:p@127.0.0.1:{pacs.http_port}/dicom-web"}, root=str(tmp_path))


def test_hooks_test_their_connections_and_the_provider_lists_both_types(pacs):
    import claimed_airflow
    from claimed_airflow.hooks.dicom import DicomHook
    from claimed_airflow.hooks.dicomweb import DicomWebHook

    ok, message = DicomWebHook(CONN).test_connection()
    assert ok, message
    ok, message = DicomHook(DIMSE_CONN).test_connection()
    assert ok and pacs.address in message, message
    types = {t["connection-type"]: t for t in claimed_airflow.get_provider_info()["connection-types"]}
    assert types["dicomweb"]["hook-class-name"].endswith("DicomWebHook")
    assert {"auth_type", "verify"} <= set(types["dicomweb"]["conn-fields"])
    assert {"ae_title", "calling_ae_title"} <= set(types["dicom"]["conn-fields"])
    assert repr(DicomWebHook(CONN).server()).count(pacs.password) == 0  # the secret is not in its repr


@pytest.mark.e2e
def test_flagship_from_orthanc_back_to_orthanc(tmp_path, run_dag, airflow_home, output_root, monkeypatch):
    """dicom_to_deployment reads its images from Orthanc (DICOMweb) and stores its SRs back there."""
    pytest.importorskip("torchvision", reason="the flagship runs here train with PyTorch (the torch extra)")
    sample = Path(__file__).resolve().parents[1] / "dags" / "sample_data" / "chestxray"
    files = sorted((sample / "dicom").glob("*.dcm"))
    labels = pd.read_csv(sample / "labels.csv")
    uids = {p.name: str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in files}
    labels["SOPInstanceUID"] = labels["file"].map(uids)
    labels[["SOPInstanceUID", "label"]].to_csv(tmp_path / "labels.csv", index=False)
    with orthanc.Orthanc(tmp_path / "orthanc") as pacs:
        pacs.upload(*files)
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", pacs.connection())
        conf = {
            "dicom_source": f"dicomweb://{CONN}?modality=CR&level=series",
            "labels": str(tmp_path / "labels.csv"),
            "label_key": "SOPInstanceUID",
            "results_destination": f"dicomweb://{CONN}",
            **FLAGSHIP_FAST,  # the subject is the PACS, not training: PyTorch, one epoch
            "test_fraction": 0.5,  # evaluation is on the test split: 5 of the 10 images, some with an age
        }
        state, tasks, run_id = run_dag("dicom_to_deployment", conf)
        assert state == "success" and tasks["dicom_results"] == "success", tasks
        task = output_root / "dicom_to_deployment" / safe_name(run_id)
        read = json.loads((task / "dicom_input" / "manifest.json").read_text())
        assert read["values"]["files_read"] == len(files) and read["values"]["server"] == pacs.dicomweb_url
        results = json.loads((task / "dicom_results" / "manifest.json").read_text())
        assert results["values"]["instances_stored"] == results["values"]["dicom_written"] > 0
        index = pd.read_csv(task / "dicom_results" / "dicom" / "index.csv")
        found = run("input.dicomweb", {"conn_id": CONN, "modality": "SR"}, root=str(tmp_path / "check"))
        found_table = _table(found)
        assert sorted(found_table["SOPInstanceUID"]) == sorted(index["SOPInstanceUID"])
        assert set(found_table["StudyInstanceUID"]) <= {
            str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in files
        }
        password = pacs.password
    written = [
        p for folder in (airflow_home / "logs", task) if folder.exists() for p in folder.rglob("*") if p.is_file()
    ]
    assert written and not [p for p in written if password.encode() in p.read_bytes()]  # the secret is nowhere
