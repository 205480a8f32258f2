"""Model monitoring (issue 26): reference profile, labels into the log's feedback, drift, accuracy, fairness, alerts.

Prediction logs are simulated in-process with ``core.prediction_log.write``: a month of days, each a few
studies of images whose statistics, header mix and errors are drawn from one seeded process.
"""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from claimed_airflow.components.monitoring import _stats
from claimed_airflow.components.monitoring.model_report import drift_tests
from claimed_airflow.core import prediction_log as plog
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run
from claimed_airflow.core.storage import safe_name

MODEL = "sim_model"
CLASSES = ["COVID-19", "No Finding"]
END = datetime(2026, 11, 30, tzinfo=UTC)  # the simulated month: November 2026
UID = "1.2.826.0.1.3680043.8.498.26"  # a test prefix


def images(rng, n: int, shift: float = 0.0, manufacturer: str | None = None, errors: dict | None = None):
    """``n`` simulated log rows: image statistics, header mix, sex/age, label and prediction (10% wrong)."""
    frame = pd.DataFrame(
        {
            "image_mean": rng.normal(120 + shift, 15, n),
            "image_std": rng.normal(50, 5, n),
            "image_min": rng.integers(0, 11, n).astype(float),
            "image_max": rng.integers(245, 256, n).astype(float),
            "Manufacturer": rng.choice(["ACME", "Globex"], n, p=[0.6, 0.4]),
            "Modality": "CR",
            "BodyPartExamined": "CHEST",
            "PixelSpacing": "0.139\\0.139",
            "PhotometricInterpretation": rng.choice(["MONOCHROME2", "MONOCHROME1"], n, p=[0.9, 0.1]),
            "PatientSex": rng.choice(["F", "M"], n),
            "PatientAge": rng.uniform(20, 90, n).round(),
            "label": rng.choice(CLASSES, n, p=[0.45, 0.55]),
        }
    )
    if manufacturer:
        frame.loc[: n // 2 - 1, "Manufacturer"] = manufacturer
    rate = frame["PatientSex"].map(errors or {}).fillna(0.1)
    wrong = rng.random(n) < rate
    frame["prediction"] = np.where(
        wrong, np.where(frame["label"] == CLASSES[0], CLASSES[1], CLASSES[0]), frame["label"]
    )
    return frame


def reference(rng) -> dict:
    """A reference profile of the same process: 2000 training images, 200 test predictions."""
    train, test = images(rng, 2000), images(rng, 200)
    correct = test["label"] == test["prediction"]
    return {
        "classes": CLASSES,
        "image_size": 64,
        "image_stats": {f: train[f].round(4).tolist() for f in _stats.IMAGE_STATS},
        "header": {h: _stats.counts(train[h]) for h in _stats.HEADER},
        "test": {
            "n": len(test),
            "accuracy": float(correct.mean()),
            "predictions": _stats.counts(test["prediction"]),
            "labels": _stats.counts(test["label"]),
            "groups": _stats.group_rates(test, "COVID-19"),
        },
        "favorable_label": "COVID-19",
    }


def log_day(root: Path, day: datetime, frame, version: str = "1", studies: int = 6, first: int = 0) -> list[str]:
    """Write ``frame`` as the log of ``studies`` studies read on ``day``; returns the SOPInstanceUIDs."""
    uids = []
    frame = frame.reset_index(drop=True)
    for s, rows_of in enumerate(np.array_split(np.arange(len(frame)), studies)):
        part = frame.iloc[rows_of]
        study = f"{UID}.{day:%m%d}.{first + s}"
        rows = []
        for i, row in enumerate(part.drop(columns=["label"]).to_dict("records")):
            uid = f"{study}.1.{i}"
            at = (day + timedelta(hours=8 + s)).isoformat()
            rows.append({**row, "StudyInstanceUID": study, "SOPInstanceUID": uid, "ended_at": at, "score": 0.9})
            uids.append(uid)
        plog.write(rows, str(root), MODEL, version, study)
    return uids


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    """30 unshifted days of 60 images each and the model's reference profile in its store folder."""
    root = tmp_path_factory.mktemp("monitoring")
    rng = np.random.default_rng(26)
    profile = reference(rng)
    store = root / "models" / MODEL / "1"
    store.mkdir(parents=True)
    (store / "reference_profile.json").write_text(json.dumps(profile))
    for d in range(30):
        log_day(root, END - timedelta(days=29 - d), images(rng, 60))
    return {"root": root, "profile": profile}


def report(root: Path, end: datetime, **arguments) -> tuple[dict, dict]:
    out = str(root / "out" / f"{end:%m%d}")
    arguments = {"log_root": str(root), "models_root": str(root / "models"), **arguments}
    result = run("monitoring.model_report", {"model_name": MODEL, "window_end": end.isoformat(), **arguments}, root=out)
    return result, json.loads(Path(result["summary"]).read_text())


def test_unshifted_windows_rarely_raise_a_false_alarm():
    rng = np.random.default_rng(1)
    alarms, profile = 0, reference(rng)
    for window in range(40):  # 40 seeded unshifted windows, 4 references
        profile = reference(rng) if window % 10 == 9 else profile
        tests = drift_tests(images(rng, 60), profile, alpha=0.01)
        assert len(tests) == 10  # 4 KS, 5 header fields (constant ones too), the predictions
        alarms += any(t["drift"] for t in tests)
    assert alarms <= 2  # at most 1 in 20


def test_a_month_without_change_raises_no_alert(month):
    result, summary = report(month["root"], END + timedelta(hours=23), window_days=1)
    assert (result["alert"], result["verdict"], result["images"]) == (False, "no monitoring finding", 60)
    assert summary["drift_tests"] == 10 and summary["drifted"] == 0 and summary["findings"] == []
    assert len(summary["daily"]) == 30 and all(d["images"] == 60 for d in summary["daily"])
    two_days = plog.read(str(month["root"]), MODEL, ended_after=END - timedelta(days=2), ended_until=END)
    assert len(two_days) == 120 and set(pd.to_datetime(two_days["ended_at"]).dt.day) == {28, 29}
    assert {p.name for p in Path(result["plots"]).iterdir()} == {
        "image_mean.png",
        "accuracy.png",
        "error_rate_by_group.png",
    }


def test_intensity_shift_and_a_new_manufacturer_are_flagged_in_one_window(month, tmp_path):
    day = END + timedelta(days=1)
    log_day(month["root"], day, images(np.random.default_rng(3), 60, shift=25, manufacturer="<Initech>"), first=50)
    result, summary = report(month["root"], day + timedelta(hours=23), window_days=1)
    drifted = {t["test"] for t in summary["drift"] if t["drift"]}
    assert result["alert"] and {"image image_mean", "header Manufacturer"} <= drifted, summary["findings"]
    assert "image image_std" not in drifted and "header PhotometricInterpretation" not in drifted
    html = Path(result["report"]).read_text()
    assert "&lt;Initech&gt;: 30" in html and "<Initech>" not in html  # values escaped in the report


def test_feedback_is_joined_by_sop_instance_uid_once_per_label_file(tmp_path):
    rng = np.random.default_rng(5)
    frame = images(rng, 12)
    uids = log_day(tmp_path, END, frame, studies=2)
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"SOPInstanceUID": [*uids[:10], "1.2.3.999"], "label": [*frame["label"][:10], "COVID-19"]}).to_csv(
        labels, index=False
    )
    arguments = {"labels": str(labels), "model_name": MODEL, "log_root": str(tmp_path)}
    first = run("monitoring.feedback", arguments, root=str(tmp_path / "out"))
    assert (first["labels"], first["matched"], first["unmatched"], first["written"]) == (11, 10, 1, True)
    again = run("monitoring.feedback", arguments, root=str(tmp_path / "out"))
    assert again["written"] is False  # the same label file: nothing new
    feedback = plog.read_feedback(str(tmp_path), MODEL)
    assert len(feedback) == 10 and set(feedback["model_version"]) == {"1"}
    assert list(feedback.set_index("SOPInstanceUID").loc[uids[:10], "prediction"]) == list(frame["prediction"][:10])
    corrected = tmp_path / "corrected.csv"
    corrected.write_text(f"SOPInstanceUID,label\n{uids[0]},No Finding\n")
    later = run("monitoring.feedback", {**arguments, "labels": str(corrected), "labelled_at": "2026-12-02T10:00:00Z"},
                root=str(tmp_path / "out"))  # fmt: skip
    assert later["written"] and len(list((tmp_path / "prediction_feedback" / f"model={MODEL}").glob("*.parquet"))) == 2
    assert plog.read_feedback(str(tmp_path), MODEL).set_index("SOPInstanceUID").loc[uids[0], "label"] == "No Finding"
    bad = tmp_path / "bad.csv"
    bad.write_text(f"SOPInstanceUID,label\n{uids[0]},../etc\n")
    with pytest.raises(ClaimedError, match=r"^labels: row 0: label '\.\./etc' not allowed"):
        run("monitoring.feedback", {**arguments, "labels": str(bad)}, root=str(tmp_path / "out"))


def test_champion_and_challenger_on_the_same_labelled_window(month, tmp_path):
    rng = np.random.default_rng(9)
    frame = images(rng, 120)
    challenger = frame.copy()
    challenger["prediction"] = challenger["label"]  # the retrained model: right on this window
    day = END + timedelta(days=3)
    uids = log_day(tmp_path, day, frame, version="1")
    assert log_day(tmp_path, day, challenger, version="2") == uids
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"SOPInstanceUID": uids, "label": frame["label"]}).to_csv(labels, index=False)
    run(
        "monitoring.feedback",
        {"labels": str(labels), "model_name": MODEL, "log_root": str(tmp_path)},
        root=str(tmp_path),
    )
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(month["profile"]))
    arguments = {"reference": str(profile), "log_root": str(tmp_path), "champion": "1"}
    result, summary = report(tmp_path, day + timedelta(hours=23), **arguments)
    assert summary["version"] == "1" and summary["performance"]["accuracy"] < 1.0  # the champion is judged
    versions = summary["versions"]
    assert (versions["champion"], versions["challenger"], versions["better"], versions["images"]) == (
        "1",
        "2",
        "2",
        120,
    )
    assert versions["accuracy"]["2"] == 1.0 > versions["accuracy"]["1"] and result["better_version"] == "2"


def test_reference_profile_of_training_images_and_test_predictions(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    folder, model = tmp_path / "images", tmp_path / "model"
    (folder / "a").mkdir(parents=True)
    model.mkdir()
    (model / "labels.json").write_text(json.dumps({"classes": ["a", "b"], "image_size": 16}))
    rows, arrays = [], []
    for i in range(12):
        pixels = rng.integers(0, 256, (16, 16), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "a" / f"{i}.png")
        split = "train" if i < 8 else "test"
        arrays += [pixels] if split == "train" else []
        rows.append({"image": f"a/{i}.png", "label": "a", "split": split, "Manufacturer": "ACME" if i % 2 else None,
                     "Modality": "CR"})  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "index.csv", index=False)
    predictions = tmp_path / "predictions.csv"
    predictions.write_text("label,prediction,PatientSex,PatientAge\na,a,F,30\na,b,F,70\nb,b,M,50\nb,b,M,\n")
    result = run(
        "metric.reference_profile",
        {"model": str(model), "images": str(folder), "predictions": str(predictions), "favorable_label": "b"},
        root=str(tmp_path / "out"),
    )
    profile = json.loads(Path(result["profile"]).read_text())
    assert json.loads((Path(result["profiled_model"]) / "reference_profile.json").read_text()) == profile
    assert (Path(result["profiled_model"]) / "labels.json").exists() and profile["training_images"] == 8
    expected = sorted(round(float(a.astype(np.float64).mean()), 4) for a in arrays)
    assert sorted(profile["image_stats"]["image_mean"]) == expected  # as predict.deployed logs them
    assert profile["header"]["Manufacturer"] == {"ACME": 4, "unknown": 4} and profile["header"]["Modality"] == {"CR": 8}
    assert profile["test"]["accuracy"] == 0.75 and profile["test"]["predictions"] == {"a": 1, "b": 3}
    sex = profile["test"]["groups"]["PatientSex"]
    assert sex["groups"]["F"]["error_rate"] == 0.5 and sex["groups"]["M"]["error_rate"] == 0.0 and sex["gap"] == 0.5
    assert set(profile["test"]["groups"]["age_group"]["groups"]) == {"<40", "40-64", "65+"}


@pytest.mark.e2e
def test_errors_for_one_sex_alert_by_email_and_asset_event(run_dag, smtp, month, output_root, tmp_path):
    rng = np.random.default_rng(11)
    root = tmp_path / "log"
    day = END + timedelta(days=5)
    for back in range(3):  # three days before: as the reference
        log_day(root, day - timedelta(days=back + 1), images(rng, 60), first=back * 10)
    frame = images(rng, 160, errors={"F": 0.5, "M": 0.1})
    uids = log_day(root, day, frame, first=90)
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"SOPInstanceUID": uids, "label": frame["label"]}).to_csv(labels, index=False)
    run("monitoring.feedback", {"labels": str(labels), "model_name": MODEL, "log_root": str(root)}, root=str(root))
    store = root / "models" / MODEL / "1"
    store.mkdir(parents=True)
    (store / "reference_profile.json").write_text(json.dumps(month["profile"]))
    conf = {
        "model_name": MODEL,
        "window_end": (day + timedelta(hours=23)).isoformat(),
        "history_days": 7,
        "log_root": str(root),
        "models_root": str(root / "models"),
        "notify_to": ["owners@example.com"],
    }
    state, tasks, run_id = run_dag("model_monitoring", conf)
    assert state == "success" and set(tasks.values()) == {"success"}, tasks
    summary = json.loads(
        (output_root / "model_monitoring" / safe_name(run_id) / "monitor" / "summary.json").read_text()
    )
    assert any(f.startswith("fairness: PatientSex error-rate gap") and "worst F" in f for f in summary["findings"])
    sex = summary["fairness"]["PatientSex"]
    assert sex["groups"]["F"]["error_rate"] > 0.35 > 0.2 > sex["groups"]["M"]["error_rate"]
    today = summary["daily"][-1]  # fairness over time: the day's error rate per group
    assert today["error_PatientSex=F"] > 0.35 and all(
        (d.get("error_PatientSex=F") or 0) < 0.3 for d in summary["daily"][:-1]
    )
    (message,) = smtp.messages
    parsed = email.message_from_bytes(message.content, policy=email.policy.default)
    assert (
        parsed["Subject"].startswith(f"[claimed] model_monitoring {MODEL}: ")
        and "monitoring finding(s)" in parsed["Subject"]
    )
    assert "blessed" not in parsed["Subject"] and message.rcpt_tos == ["owners@example.com"]
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == f"claimed://retrain/{MODEL}", AssetEvent.source_run_id == run_id)
        ).all()  # fmt: skip
        assert len(events) == 1 and events[0].extra["model_name"] == MODEL
        assert events[0].extra["verdict"] == summary["verdict"]


def test_bad_monitoring_input_is_one_line(month, tmp_path):
    arguments = {"model_name": MODEL, "log_root": str(month["root"]), "models_root": str(month["root"] / "models")}
    out = str(tmp_path / "out")
    with pytest.raises(ClaimedError, match=r"^window_end: 'yesterday' is not an ISO 8601 time$"):
        run("monitoring.model_report", {**arguments, "window_end": "yesterday"}, root=out)
    with pytest.raises(ClaimedError, match=r"^reference: no prediction in the window names a model version"):
        run("monitoring.model_report", {**arguments, "window_end": "2020-01-01T00:00:00Z"}, root=out)
    (tmp_path / "other.json").write_text('{"accuracy": 1}')
    with pytest.raises(ClaimedError, match=r"other\.json is not a metric\.reference_profile JSON$"):
        run("monitoring.model_report", {**arguments, "reference": str(tmp_path / "other.json")}, root=out)
    with pytest.raises(ClaimedError, match=r"^alpha: must be between 0 and 1, got 1\.5$"):
        run("monitoring.model_report", {**arguments, "alpha": 1.5}, root=out)
