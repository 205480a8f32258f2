"""dicom_inference (issue 25): the deployed model read on each arriving study, SR back to the PACS, the prediction log.

In-process component tests (model texts, versions, series rules, KServe V2 on loopback, Watson ML stub,
the log on a local folder and on S3) and one end-to-end run of the DAG against a real Orthanc.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from claimed_airflow.core import prediction_log
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run
from claimed_airflow.core.storage import safe_name
from tests import orthanc
from tests.inference_fixtures import BASIC_TEXT_SR, deploy_tiny, make_study, make_text_sr
from tests.tiny_model import CLASSES

pytest.importorskip("onnxruntime")
pytest.importorskip("highdicom")

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def _manifest(result: dict) -> dict:
    return json.loads(Path(result["manifest"]).read_text())


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 3-image CR study plus a Basic Text SR and a truncated copy of an image, read and selected; a tiny
    model deployed twice (versions 1 and 2) to ``<root>/models/tiny``."""
    root = tmp_path_factory.mktemp("inference")
    uid, files = make_study(root / "study")
    make_text_sr(root / "study", uid)
    data = files[0].read_bytes()
    (root / "study" / "truncated.dcm").write_bytes(data[: len(data) // 2])
    deploy_tiny(root / "out" / "models", versions=2)
    out = str(root / "out")
    read = run("input.dicom", {"source": str(root / "study")}, root=out)
    chosen = run("filter.series", {"metadata": read["metadata"], "modalities": ["cr", "DX"]}, root=out)
    images = run(
        "transform.dicom_to_images", {"metadata": chosen["selected"], "files": read["files"], "size": 16}, root=out
    )
    return {"uid": uid, "root": root, "out": out, "read": read, "chosen": chosen, "images": images["images"]}


def test_truncated_and_non_image_instances_are_set_aside_with_a_reason(study):
    rejected = {r["item"]: r["reason"] for r in _manifest(study["read"])["rejected"]}
    assert list(rejected) == ["truncated.dcm"] and "pixel data truncated" in rejected["truncated.dcm"]
    chosen = study["chosen"]
    assert chosen["blessed"] and (chosen["series_selected"], chosen["instances_selected"]) == (1, 3)
    rejected = _manifest(chosen)["rejected"]
    assert rejected == [
        {
            "item": "report.dcm",
            "reason": f"not an image: SOP class {BASIC_TEXT_SR} (Basic Text SR Storage) has no pixel data",
        }
    ]


def test_no_matching_series_ends_with_one_line_reason(study):
    arguments = {"metadata": study["read"]["metadata"], "modalities": ["MR"], "body_parts": ["HEAD"]}
    result = run("filter.series", arguments, root=study["out"])
    assert result["blessed"] is False and result["instances_selected"] == 0
    assert result["reason"] == (
        "no series matches Modality in ['MR'] and BodyPartExamined in ['HEAD']: the study has 2 series "
        "(CR/CHEST, SR/- (no image))"
    )
    assert pd.read_parquet(result["selected"]).empty
    other = run(
        "filter.series", {"metadata": study["read"]["metadata"], "study_instance_uid": "1.2.3"}, root=study["out"]
    )
    assert other["blessed"] is False and len(_manifest(other)["rejected"]) == 4  # every instance: another study
    with pytest.raises(ClaimedError, match=r"^modalities: 'C\\nR' is not a DICOM value$"):
        run("filter.series", {"metadata": study["read"]["metadata"], "modalities": ["C\nR"]}, root=study["out"])


def test_predict_images_scores_an_unlabelled_study(study, tmp_path):
    model = deploy_tiny(tmp_path / "models") / "1"
    with pytest.raises(ClaimedError, match="^images: no labelled image in "):
        run("predict.images", {"model": str(model), "images": study["images"]}, root=str(tmp_path))
    result = run(
        "predict.images", {"model": str(model), "images": study["images"], "unlabelled": True}, root=str(tmp_path)
    )
    table = pd.read_csv(result["predictions"])
    assert len(table) == 3 and table["label"].isna().all() and set(table["prediction"]) <= set(CLASSES)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "../models/x",
        "tiny@",
        "tiny@v2",
        "tiny@1@2",
        "kserve://conn/a/b",
        "kserve://conn/tiny?x=1",
        "kserve://c d/tiny",
        "http://127.0.0.1/v2/models/tiny",
        "watsonml://conn/deployment",
        "watsonml://conn/dep?labels=../x",
    ],
)
def test_a_model_text_that_is_none_of_the_forms_is_refused_in_one_line(study, text):
    with pytest.raises(ClaimedError, match=r"^model: .* is not <name>, <name>@<version>, kserve://") as caught:
        run("predict.resolve_model", {"model": text}, root=study["out"])
    assert "\n" not in str(caught.value)


def test_newest_complete_version_or_the_pinned_one(study):
    models = study["root"] / "out" / "models" / "tiny"
    (models / "3").mkdir()  # a version being published (claimed, nothing in it yet) is not the newest
    (models / "3" / ".claimed-version").touch()
    newest = run("predict.resolve_model", {"model": "tiny"}, root=study["out"])
    assert (newest["model"], newest["model_version"], newest["image_size"]) == ("tiny@2", "2", 16)
    assert newest["model_uri"].endswith("/models/tiny/2") and newest["classes"] == CLASSES
    assert run("predict.resolve_model", {"model": "tiny@1"}, root=study["out"])["model_version"] == "1"
    with pytest.raises(ClaimedError, match=r"^model: tiny@3 is not in the model store "):
        run("predict.resolve_model", {"model": "tiny@3"}, root=study["out"])
    with pytest.raises(ClaimedError, match=r"^model: no deployed version of 'absent' in the model store "):
        run("predict.resolve_model", {"model": "absent"}, root=study["out"])


def test_kserve_v2_endpoint_gives_the_store_models_answers(study, tmp_path, monkeypatch):
    from claimed_airflow.serving import ServedModel, serving

    store = run("predict.deployed", {"images": study["images"], "model": "tiny@2"}, root=study["out"])
    with serving(ServedModel(study["root"] / "out" / "models" / "tiny")) as url:
        host, port = url.removeprefix("http://").split(":")
        monkeypatch.setenv(
            "AIRFLOW_CONN_KSERVE_TEST", json.dumps({"conn_type": "http", "host": host, "port": int(port)})
        )
        arguments = {"images": study["images"], "model": "kserve://kserve_test/tiny", "batch_size": 2}
        served = run("predict.deployed", {**arguments, "finding": "dark", "threshold": 0.0}, root=str(tmp_path))
        with pytest.raises(ClaimedError, match=r"^model: http://127\.0\.0\.1:\d+/v2/models/absent answered HTTP 404"):
            run("predict.deployed", {**arguments, "model": "kserve://kserve_test/absent"}, root=str(tmp_path))
    assert (served["model"], served["model_name"], served["model_version"]) == (
        "kserve://kserve_test/tiny",
        "tiny",
        "2",
    )
    a, b = pd.read_csv(store["predictions"]), pd.read_csv(served["predictions"])
    assert list(a["prediction"]) == list(b["prediction"])
    assert (a[["p_bright", "p_dark"]] - b[["p_bright", "p_dark"]]).abs().max().max() < 1e-5
    summary = json.loads(Path(served["summary"]).read_text())
    assert summary["images"] == summary["findings"] == served["findings"] == 3  # threshold 0: every image
    for conn, error in (
        ({"host": "127.0.0.1", "login": "u", "password": "p"}, "would send credentials over plain http; use https"),
        ({"host": "file:///etc"}, "is not an http:// or https:// server"),
    ):
        monkeypatch.setenv("AIRFLOW_CONN_KSERVE_TEST", json.dumps({"conn_type": "http", **conn}))
        with pytest.raises(ClaimedError, match=f"^model: connection 'kserve_test' {error}"):
            run("predict.resolve_model", {"model": "kserve://kserve_test/tiny"}, root=str(tmp_path))


def test_watson_ml_deployment_with_the_classes_of_a_store_version(study, tmp_path):
    pytest.importorskip("ibm_watsonx_ai")
    from tests.wml_stub import API_KEY, SPACE_ID, USERNAME, WatsonMLStub

    saved = dict(os.environ)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    try:
        with WatsonMLStub(tmp_path) as stub:
            extra = {"space_id": SPACE_ID, "verify": stub.cert}
            conn = {"conn_type": "watson_ml", "host": stub.url, "login": USERNAME, "password": API_KEY, "extra": extra}
            os.environ["AIRFLOW_CONN_WML_TEST"] = json.dumps(conn)
            stub.deployments["d-1"] = {"metadata": {"id": "d-1"}, "entity": {"status": {"state": "ready"}}}
            text = "watsonml://wml_test/d-1?labels=tiny@1"
            result = run("predict.deployed", {"images": study["images"], "model": text}, root=study["out"])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert (result["model"], result["model_name"], result["model_version"]) == (text, "tiny", "1")
    table = pd.read_csv(result["predictions"])
    assert list(table["prediction"]) == ["dark"] * 3 and list(table["score"]) == [0.75] * 3  # the stub's answer
    assert "POST /ml/v4/deployments/d-1/predictions" in stub.calls()


def _rows(study: dict, model: str = "tiny@2") -> str:
    return run("predict.deployed", {"images": study["images"], "model": model}, root=study["out"])["predictions"]


def test_prediction_log_one_file_per_study_and_version_replaced_on_retry(study):
    first = _rows(study)
    arguments = {"predictions": first, "arrived_at": "2026-12-06T10:00:00Z", "run_id": "r1"}
    result = run("output.prediction_log", arguments, root=study["out"])
    assert (result["rows_logged"], result["log_files"]) == (3, 1)
    run("output.prediction_log", {**arguments, "run_id": "r2"}, root=study["out"])  # a retry: replaced
    run("output.prediction_log", {"predictions": _rows(study, "tiny@1"), "run_id": "r3"}, root=study["out"])
    log = prediction_log.read(study["out"])
    assert sorted(log.groupby(["model", "version", "run_id"]).size().items()) == [
        (("tiny", "1", "r3"), 3),
        (("tiny", "2", "r2"), 3),
    ]
    rows = prediction_log.read(study["out"], "tiny", "2").sort_values("SOPInstanceUID")
    assert list(rows["SOPInstanceUID"]) == [f"{study['uid']}.1.{i}" for i in (1, 2, 3)]
    assert set(rows["StudyInstanceUID"]) == {study["uid"]} and set(rows["PatientSex"]) <= {"F", "M"}
    assert rows["PatientAge"].notna().all() and (rows["image_max"] > rows["image_mean"]).all()
    first_row = rows.iloc[0]
    probabilities = dict(first_row["probabilities"])
    assert set(probabilities) == set(CLASSES) and abs(sum(probabilities.values()) - 1) < 1e-5
    assert probabilities[first_row["prediction"]] == pytest.approx(first_row["score"])
    assert (
        str(first_row["arrived_at"]) == "2026-12-06 10:00:00+00:00" and first_row["ended_at"] > first_row["arrived_at"]
    )
    with pytest.raises(ClaimedError, match="^arrived_at: 'yesterday' is not an ISO 8601 time$"):
        run("output.prediction_log", {**arguments, "arrived_at": "yesterday"}, root=study["out"])


def test_prediction_log_and_model_store_on_s3(study, s3_endpoint):
    fs = s3_endpoint
    fs.put(str(study["root"] / "out" / "models" / "tiny" / "1") + "/", "claimed/store/models/tiny/1/", recursive=True)
    result = run(
        "predict.deployed",
        {"images": study["images"], "model": "tiny", "models_root": "s3://claimed/store/models"},
        root=study["out"],
    )
    assert result["model_version"] == "1"
    for _ in range(2):
        run(
            "output.prediction_log",
            {"predictions": result["predictions"], "log_root": "s3://claimed/store"},
            root=study["out"],
        )
    assert len(fs.find("claimed/store/prediction_log")) == 1
    assert len(prediction_log.read("s3://claimed/store")) == 3


def test_predict_study_runs_the_steps_in_one_task_each_with_its_manifest(study, tmp_path):
    """predict.study: the steps in one process, each in its own folder with its manifest; no matching series ends
    it after select_series with the one-line reason; run_step outside a component run is refused."""
    from claimed_airflow.core.runner import run_step
    from claimed_airflow.core.storage import Scope

    arguments = {
        "source": str(study["root"] / "study"),
        "model": "tiny",
        "study_instance_uid": study["uid"],
        "modalities": ["CR"],
        "finding": "dark",
        "threshold": 0.0,
        "log_root": str(tmp_path),
        "run_id": "r9",
        "notify_to": [],
    }
    result = run("predict.study", arguments, root=study["out"], scope=Scope("dag", "run1", "study"))
    task = Path(study["out"]) / "dag" / "run1" / "study"
    steps = {p.parent.name: json.loads(p.read_text()) for p in task.glob("*/manifest.json")}
    assert set(steps) == {
        "resolve_model",
        "retrieve",
        "select_series",
        "dicom_to_images",
        "predict",
        "dicom_results",
        "prediction_log",
    }
    assert set(result["seconds"]) == set(steps) and all(s > 0 for s in result["seconds"].values())
    assert steps["retrieve"]["scope"]["step"] == "retrieve" and _manifest(result)["scope"]["step"] == ""
    assert [r["item"] for r in steps["retrieve"]["rejected"]] == ["truncated.dcm"]
    assert [r["item"] for r in steps["select_series"]["rejected"]] == ["report.dcm"]
    assert steps["predict"]["parameters"]["model"] == "tiny@2"  # the version resolved once for every step
    assert (result["blessed"], result["model"], result["predicted"], result["findings"]) == (True, "tiny@2", 3, 3)
    assert (result["dicom_written"], result["rows_logged"], result["notified"]) == (3, 3, 0)
    written = pd.read_csv(Path(steps["dicom_results"]["outputs"]["dicom"]["uri"]) / "index.csv")
    assert set(written["StudyInstanceUID"]) == {study["uid"]} and len(written) == 3
    assert len(prediction_log.read(str(tmp_path), "tiny", "2")) == 3
    ended = run(
        "predict.study", {**arguments, "modalities": ["MR"]}, root=study["out"], scope=Scope("dag", "run2", "study")
    )
    assert ended["blessed"] is False and ended["reason"].startswith("no series matches Modality in ['MR']: ")
    task = Path(study["out"]) / "dag" / "run2" / "study"
    assert {p.parent.name for p in task.glob("*/manifest.json")} == {"resolve_model", "retrieve", "select_series"}
    with pytest.raises(ClaimedError, match=r"^retrieve: source: .*absent"):
        run("predict.study", {**arguments, "source": str(study["root"] / "absent")}, root=study["out"])
    with pytest.raises(ClaimedError, match="^x: run_step runs a step of a component run"):
        run_step("x", "predict.resolve_model", {"model": "tiny"})


def test_study_source_and_destination_of_the_dag():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "dicom_inference", Path(__file__).parents[1] / "dags" / "dicom_inference.py"
    )
    dag_file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dag_file)
    source, destination = dag_file.study_source, dag_file.study_destination
    assert source("pacs", "1.2.3") == "dicomweb://pacs?level=study&StudyInstanceUID=1.2.3"
    assert (
        source("dicom://pacs_dimse?modality=CR", "1.2")
        == "dicom://pacs_dimse?modality=CR&level=study&StudyInstanceUID=1.2"
    )
    assert source("/landing/study-1", "1.2") == "/landing/study-1"
    for hostile in ("1.2&PatientID=*", "1.2/../x", "1." * 40 + "1", ""):
        with pytest.raises(ValueError, match=r"^study_instance_uid: .* is not a DICOM UID"):
            source("pacs", hostile)
    assert destination("", "pacs") == "dicomweb://pacs"
    assert destination("", "dicom://pacs_dimse?modality=CR") == "dicom://pacs_dimse"
    assert destination("", "/landing/study-1") == "" and destination("none", "pacs") == ""
    assert destination("dicom://archive", "pacs") == "dicom://archive"


@pytest.mark.e2e
def test_dicom_inference_from_orthanc_back_to_orthanc_once(tmp_path, run_dag, output_root, monkeypatch, smtp):
    """A study pushed to Orthanc is read by the deployed model; the SRs are in Orthanc linked to its images, the
    log has a row per image; the same study run again leaves one SR per image and the same rows."""
    if not orthanc.available():
        pytest.skip(f"Orthanc is not installed ({orthanc.INSTALL})")
    uid, files = make_study(tmp_path / "study", number=2)
    report = make_text_sr(tmp_path / "study", uid)
    name = "tiny_inference_e2e"
    deploy_tiny(output_root / "models", name=name)
    images = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in files}
    with orthanc.Orthanc(tmp_path / "orthanc") as pacs:
        pacs.upload(*files, report)
        monkeypatch.setenv("AIRFLOW_CONN_PACS_INFERENCE", pacs.connection())
        conf = {
            "study_instance_uid": uid,
            "source": "pacs_inference",
            "model": name,
            "finding": "dark",
            "notify_threshold": 0.5,
            "notify_to": ["radiology@example.com"],
            "arrived_at": "2026-12-06T10:00:00+00:00",
        }
        runs = []
        for attempt in range(2):
            state, tasks, run_id = run_dag("dicom_inference", conf if attempt == 0 else {**conf, "notify_to": []})
            assert state == "success", tasks
            runs.append((tasks, run_id))
            found = run(
                "input.dicomweb",
                {"conn_id": "pacs_inference", "level": "instance", "filters": {"StudyInstanceUID": uid}},
                root=str(tmp_path / f"check{attempt}"),
            )
            table = pd.read_parquet(found["metadata"])
            reports = table[table["SOPClassUID"] == COMPREHENSIVE_SR]
            assert len(reports) == 3 and len(table) == 3 + 1 + 3  # images, the text SR, one SR per image
            linked = set()
            for file in reports["file"]:
                sr = pydicom.dcmread(Path(found["files"]) / file)
                evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
                linked |= {str(item.ReferencedSOPInstanceUID) for item in evidence.ReferencedSOPSequence}
                assert sr.StudyInstanceUID == uid
            assert linked == images
            log = prediction_log.read(str(output_root), name, "1")
            assert sorted(log["SOPInstanceUID"]) == sorted(images) and set(log["run_id"]) == {run_id}
            assert (log["arrived_at"] == pd.Timestamp(conf["arrived_at"])).all()
            assert (log["started_at"] > log["arrived_at"]).all() and (log["ended_at"] > log["started_at"]).all()
        password = pacs.password
    first, second = runs
    assert list(first[0]) == ["study"]  # one task: the steps run in it, each with its manifest
    assert len(smtp.messages) == 1 and smtp.messages[0].rcpt_tos == ["radiology@example.com"]
    subject = email.message_from_bytes(smtp.messages[0].content, policy=email.policy.default)["Subject"]
    assert subject.startswith(f"[claimed] dicom_inference {first[1]}: findings")
    task = output_root / "dicom_inference" / safe_name(first[1]) / "study"
    assert json.loads((task / "manifest.json").read_text())["values"]["notified"] == 1
    assert (task / "notify" / "manifest.json").exists()
    again = output_root / "dicom_inference" / safe_name(second[1]) / "study"
    assert json.loads((again / "manifest.json").read_text())["values"]["notified"] == 0  # notify_to empty
    assert not (again / "notify").exists()
    resolved = json.loads((task / "resolve_model" / "manifest.json").read_text())["values"]
    assert (resolved["model"], resolved["model_version"]) == (f"{name}@1", "1")
    selected = json.loads((task / "select_series" / "manifest.json").read_text())
    assert [r["reason"] for r in selected["rejected"]] == [
        f"not an image: SOP class {BASIC_TEXT_SR} (Basic Text SR Storage) has no pixel data"
    ]
    written = [p for folder in (task, output_root / "prediction_log") for p in folder.rglob("*") if p.is_file()]
    assert written and not [p for p in written if password.encode() in p.read_bytes()]  # the secret is nowhere
