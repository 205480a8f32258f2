"""Benchmark: arrival -> SR stored latency of production inference, Airflow against a hand-written loop, in one run.

The model: the flagship's (``train.mobilenet_v2``, PyTorch, 64 px, alpha 0.35) trained once for one epoch
on the bundled chest phantoms and published with ``deploy.local`` as ``chestxray_mobilenet_v2`` version 1
(``--model tiny``: the tests' tiny ONNX classifier instead). The studies: phantoms rewritten as one-image CR
studies with new UIDs.

Two Orthanc servers (``StableAge`` 1 s), one per path, each fed ``--studies`` studies one by one (the
next sent once the previous one's SR is in the PACS) and then as many at once:

- hand-written: one Python loop polling Orthanc's ``/changes`` every ``--interval`` s for ``StableStudy``,
  then retrieve (dicomweb-client WADO-RS), decode (pydicom), resize, onnxruntime (session made once),
  a TID 1500 Comprehensive SR (highdicom), store (STOW-RS); one study at a time;
- Airflow 3: API server, scheduler (LocalExecutor, parallelism 4), DAG processor and triggerer on SQLite;
  ``dicom_inference_watch``'s AssetWatcher (the same poll interval) starts one ``dicom_inference`` run
  per study, which stores its SR back in Orthanc. ``$AIRFLOW_HOME/config/airflow_local_settings.py`` calls
  ``claimed_airflow.preload.preload()`` as a deployment would (``--preload no``: it does not).

Arrival is when Orthanc answered the upload of the study's image; stored is when an observer polling the
PACS's change feed every 0.1 s (the same for both paths) sees the study's SR series. Reported: p50/p95,
ratio, studies per minute of the burst, and where the time goes: from Airflow's task instances (the
scheduler's waits, the task's run) and the ``seconds`` of each step of its one task (``predict.study``).

    .venv/bin/python tests/benchmarks/inference_latency.py [--studies 20] [--preload no] [--idle-sleep 0.25]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
PHANTOMS = ROOT / "dags" / "sample_data" / "chestxray_phantoms"
MODEL = "chestxray_mobilenet_v2"
STUDY_ROOT = "1.2.826.0.1.3680043.8.498.93"  # a test prefix: UIDs below it are made up here

from tests import orthanc  # noqa: E402
from tests.ui.airflow_ui import airflow_ui  # noqa: E402


def make_studies(folder: Path, count: int, first: int) -> list[Path]:
    """``count`` one-image CR studies (phantoms with new UIDs), numbered from ``first``."""
    import pydicom

    sources = sorted((PHANTOMS / "dicom").glob("*.dcm"))
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for number in range(first, first + count):
        ds = pydicom.dcmread(sources[number % len(sources)])
        study = f"{STUDY_ROOT}.{number}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, f"{study}.1"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{study}.1.1"
        ds.PatientID, ds.BodyPartExamined = f"BENCH{number}", "CHEST"
        for keyword in ("PatientBirthDate", "ReferringPhysicianName", "AccessionNumber", "StudyID"):
            setattr(ds, keyword, ds.get(keyword, ""))  # type 2: present (highdicom copies them into the SR)
        ds.StudyDate, ds.StudyTime = ds.get("StudyDate") or "20261206", ds.get("StudyTime") or "120000"
        files.append(folder / f"study{number}.dcm")
        ds.save_as(files[-1], enforce_file_format=True)
    return files


def publish_model(models_root: Path, kind: str, work: Path, trained: Path | None = None) -> float:
    """The model published as ``MODEL`` version 1 under ``models_root`` (``trained``: a copy of this model folder,
    e.g. one a previous run published); seconds it took."""
    from claimed_airflow.core.runner import run

    started = time.perf_counter()
    if trained:
        shutil.copytree(trained, models_root / MODEL / "1")
        return time.perf_counter() - started
    if kind == "tiny":
        from tests.tiny_model import make_onnx_model_folder

        folder = make_onnx_model_folder(models_root / MODEL / "1", size=64)
        labels = {"classes": ["COVID-19", "No Finding"], "image_size": 64, "framework": "torch"}
        (folder / "labels.json").write_text(json.dumps(labels))  # the flagship's classes (its finding)
        return time.perf_counter() - started
    out = str(work / "train")
    found = run(
        "input.dicom",
        {"source": str(PHANTOMS / "dicom"), "labels": str(PHANTOMS / "labels.csv"), "label_key": "file"},
        root=out,
    )
    images = run("transform.dicom_to_images", {"metadata": found["metadata"], "files": found["files"]}, root=out)
    trained = run(
        "train.mobilenet_v2",
        {"images": images["images"], "epochs": 1, "framework": "torch", "holdout": False},
        root=out,
    )
    run("deploy.local", {"model": trained["model"], "model_name": MODEL, "models_root": str(models_root)}, root=out)
    return time.perf_counter() - started


class Observer:
    """Polls a PACS's change feed every 0.1 s; the time each study's first SR series appeared."""

    def __init__(self, pacs: orthanc.Orthanc):
        import requests

        self.pacs, self.http = pacs, requests.Session()
        self.http.auth = (orthanc.USER, pacs.password)
        self.seen: dict[str, float] = {}  # Orthanc study id -> time its SR series was seen
        self.stopped = threading.Event()
        self.since = self.http.get(f"{pacs.url}/changes?last").json()["Last"]
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self) -> None:
        while not self.stopped.wait(0.1):
            answer = self.http.get(f"{self.pacs.url}/changes?since={self.since}&limit=1000").json()
            now = time.time()
            for change in answer["Changes"]:
                if change["ChangeType"] == "NewSeries":
                    series = self.http.get(f"{self.pacs.url}/series/{change['ID']}").json()
                    if series["MainDicomTags"].get("Modality") == "SR":
                        self.seen.setdefault(series["ParentStudy"], now)
            self.since = answer["Last"]

    def wait(self, study_ids: list[str], timeout: float, failed=None) -> None:
        """Until every study has its SR; ``failed()``: a text when the path has failed (checked every 2 s)."""
        deadline, checked = time.monotonic() + timeout, time.monotonic()
        while not all(s in self.seen for s in study_ids):
            if time.monotonic() > deadline:
                missing = sum(s not in self.seen for s in study_ids)
                raise RuntimeError(f"{missing} of {len(study_ids)} studies have no SR after {timeout:g} s")
            if failed and time.monotonic() - checked > 2:
                checked = time.monotonic()
                if why := failed():
                    raise RuntimeError(why)
            time.sleep(0.05)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def upload(pacs: orthanc.Orthanc, path: Path) -> tuple[str, float]:
    """(Orthanc's study id, arrival time) of one uploaded file."""
    answer = json.loads(pacs.request("POST", "/instances", path.read_bytes()))
    return answer["ParentStudy"], time.time()


def measure(pacs: orthanc.Orthanc, one_by_one: list[Path], at_once: list[Path], timeout: float, failed=None) -> dict:
    """Latencies (s) of the studies sent one by one, then at once; the burst's studies per minute."""
    observer = Observer(pacs)
    try:
        sequential = []
        for path in one_by_one:
            study, arrived = upload(pacs, path)
            observer.wait([study], timeout, failed)
            sequential.append(observer.seen[study] - arrived)
        with ThreadPoolExecutor(len(at_once)) as pool:
            sent = list(pool.map(lambda p: upload(pacs, p), at_once))
        observer.wait([study for study, _ in sent], timeout * len(at_once), failed)
        burst = [observer.seen[study] - arrived for study, arrived in sent]
        span = max(observer.seen[s] for s, _ in sent) - min(a for _, a in sent)
    finally:
        observer.stop()
    return {"one_by_one": sequential, "at_once": burst, "studies_per_min": 60 * len(at_once) / span}


def hand_written_loop(pacs: orthanc.Orthanc, model_folder: Path, interval: float, stop: threading.Event) -> None:
    """The minimal loop: poll /changes, retrieve, decode, onnxruntime, SR, store; one study at a time."""
    import highdicom as hd
    import numpy as np
    import onnxruntime
    import requests
    from dicomweb_client.api import DICOMwebClient
    from dicomweb_client.session_utils import create_session_from_auth
    from highdicom.sr import CodedConcept
    from PIL import Image
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid
    from requests.auth import HTTPBasicAuth

    labels = json.loads((model_folder / "labels.json").read_text())
    classes, size = labels["classes"], int(labels["image_size"])
    session = onnxruntime.InferenceSession(str(model_folder / "model.onnx"), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    auth = HTTPBasicAuth(orthanc.USER, pacs.password)
    web = DICOMwebClient(pacs.dicomweb_url, session=create_session_from_auth(auth))
    http = requests.Session()
    http.auth = auth
    since = http.get(f"{pacs.url}/changes?last").json()["Last"]
    scheme = "99CLAIMED"
    while not stop.wait(interval):
        answer = http.get(f"{pacs.url}/changes?since={since}&limit=1000").json()
        since = answer["Last"]
        for change in answer["Changes"]:
            if change["ChangeType"] != "StableStudy":
                continue
            uid = http.get(f"{pacs.url}/studies/{change['ID']}").json()["MainDicomTags"]["StudyInstanceUID"]
            images = [ds for ds in web.retrieve_study(uid) if ds.Modality in ("CR", "DX") and "PixelData" in ds]
            if not images:
                continue
            batch = []
            for ds in images:
                pixels = ds.pixel_array.astype(np.float32)
                pixels = (pixels - pixels.min()) / max(float(np.ptp(pixels)), 1.0) * 255
                small = np.asarray(Image.fromarray(pixels.astype(np.uint8)).resize((size, size), Image.BILINEAR))
                batch.append(np.repeat((small.astype(np.float32) / 127.5 - 1)[..., None], 3, axis=-1))
            probabilities = session.run(None, {input_name: np.stack(batch)})[0]
            reports = []
            for ds, p in zip(images, probabilities, strict=True):
                device = hd.sr.DeviceObserverIdentifyingAttributes(uid=generate_uid(), name=MODEL)
                context = hd.sr.ObservationContext(
                    observer_device_context=hd.sr.ObserverContext(
                        observer_type=codes.DCM.Device, observer_identifying_attributes=device
                    )
                )
                group = hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="prediction"),
                    source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ds)],
                    qualitative_evaluations=[
                        hd.sr.QualitativeEvaluation(
                            name=CodedConcept("CLASS", scheme, "Predicted class"),
                            value=CodedConcept(f"C{int(p.argmax())}", scheme, classes[int(p.argmax())]),
                        )
                    ],
                    measurements=[
                        hd.sr.Measurement(
                            name=CodedConcept("SCORE", scheme, "Prediction score"),
                            value=float(p.max()),
                            unit=CodedConcept("1", "UCUM", "no units"),
                        )
                    ],
                )
                report = hd.sr.MeasurementReport(
                    observation_context=context,
                    procedure_reported=CodedConcept("CLASSIFY", scheme, "Image classification"),
                    imaging_measurements=[group],
                )
                reports.append(
                    hd.sr.ComprehensiveSR(
                        evidence=[ds],
                        content=report[0],
                        series_instance_uid=generate_uid(),
                        series_number=990,
                        sop_instance_uid=generate_uid(),
                        instance_number=1,
                        manufacturer="hand-written loop",
                        is_complete=True,
                    )
                )
            web.store_instances(reports)


def run_hand_written(folder: Path, model_folder: Path, args, one_by_one, at_once) -> dict:
    with orthanc.Orthanc(folder / "orthanc-hand", StableAge=1) as pacs:
        stop = threading.Event()
        loop = threading.Thread(target=hand_written_loop, args=(pacs, model_folder, args.interval, stop), daemon=True)
        loop.start()
        time.sleep(2 * args.interval + 1)  # its cursor is set
        try:
            return measure(pacs, one_by_one, at_once, timeout=120)
        finally:
            stop.set()
            loop.join()


class Api:
    """Airflow's REST API with the simple auth manager's admin token."""

    def __init__(self, base: str):
        import requests

        self.base, self.http = base, requests.Session()
        token = self.http.get(f"{base}/auth/token", timeout=60).json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str) -> dict:
        answer = self.http.get(f"{self.base}/api/v2{path}", timeout=120)
        answer.raise_for_status()
        return answer.json()

    def failed(self) -> str | None:
        """A failed dicom_inference run's failed tasks, if any."""
        runs = self.get("/dags/dicom_inference/dagRuns?state=failed&limit=1")["dag_runs"]
        if not runs:
            return None
        path = f"/dags/dicom_inference/dagRuns/{urllib.parse.quote(runs[0]['dag_run_id'], safe='')}/taskInstances"
        tasks = [ti["task_id"] for ti in self.get(path)["task_instances"] if ti["state"] == "failed"]
        return f"dicom_inference run {runs[0]['dag_run_id']} failed: {tasks}"

    def unpause(self, dag_id: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while self.http.get(f"{self.base}/api/v2/dags/{dag_id}", timeout=120).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{dag_id} was not parsed in {timeout:g} s")
            time.sleep(2)
        self.http.patch(f"{self.base}/api/v2/dags/{dag_id}", json={"is_paused": False}, timeout=120).raise_for_status()


WARM_UP = """
import airflow.sdk, airflow.sdk.execution_time.task_runner, airflow.providers.standard.operators.trigger_dagrun
import claimed_airflow.operators, claimed_airflow.triggers.studies, claimed_airflow.core.registry as registry
import pandas, pyarrow.parquet, pydicom, highdicom, onnxruntime, dicomweb_client, PIL.Image, httpx, requests
registry.library()
"""


def _time(text: str | None) -> float | None:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp() if text else None


def where_the_time_goes(api: Api, output_root: Path) -> dict:
    """Medians over the finished dicom_inference runs: each task's wait (from its last upstream's end, or the
    run's queued time, to its start) and run time; the steps of its one task (their manifests); the watch DAG's
    part; the run's whole span."""
    runs = api.get("/dags/dicom_inference/dagRuns?limit=200&state=success")["dag_runs"]
    upstream = {t["task_id"]: [] for t in api.get("/dags/dicom_inference/tasks")["tasks"]}
    for task in api.get("/dags/dicom_inference/tasks")["tasks"]:
        for downstream in task["downstream_task_ids"]:
            upstream[downstream].append(task["task_id"])
    waits: dict[str, list[float]] = {}
    durations: dict[str, list[float]] = {}
    spans, to_first = [], []
    for dag_run in runs:
        path = f"/dags/dicom_inference/dagRuns/{urllib.parse.quote(dag_run['dag_run_id'], safe='')}/taskInstances"
        tis = {ti["task_id"]: ti for ti in api.get(path)["task_instances"] if ti["start_date"]}
        queued = _time(dag_run["queued_at"])
        for task_id, ti in tis.items():
            ends = [_time(tis[u]["end_date"]) for u in upstream[task_id] if u in tis]
            waits.setdefault(task_id, []).append(_time(ti["start_date"]) - max(ends, default=queued))
            durations.setdefault(task_id, []).append(ti["duration"] or 0.0)
        spans.append(_time(dag_run["end_date"]) - queued)
        to_first.append(min(_time(ti["start_date"]) for ti in tis.values()) - queued)
    steps: dict[str, list[float]] = {}  # the steps of predict.study (one task runs them all): its manifest's seconds
    for record in sorted(output_root.glob("dicom_inference/*/study/manifest.json")):
        for step, seconds in json.loads(record.read_text())["values"].get("seconds", {}).items():
            steps.setdefault(step, []).append(seconds)
    watch = api.get("/dags/dicom_inference_watch/dagRuns?limit=200")["dag_runs"]
    watch_spans = [_time(r["end_date"]) - _time(r["queued_at"]) for r in watch if r["end_date"]]
    watch_waits: dict[str, list[float]] = {}  # a watch task's first start after its run was queued, its run time
    watch_runs: dict[str, list[float]] = {}
    for dag_run in watch:
        path = f"/dags/dicom_inference_watch/dagRuns/{urllib.parse.quote(dag_run['dag_run_id'], safe='')}"
        for ti in api.get(f"{path}/taskInstances?limit=100")["task_instances"]:
            if ti["start_date"] and ti["map_index"] in (-1, 0):
                watch_waits.setdefault(ti["task_id"], []).append(_time(ti["start_date"]) - _time(dag_run["queued_at"]))
                watch_runs.setdefault(ti["task_id"], []).append(ti["duration"] or 0.0)
    median = statistics.median
    return {
        "runs": len(runs),
        "run_span_p50": median(spans),
        "queued_to_first_task_p50": median(to_first),
        "watch_runs": len(watch),
        "watch_run_span_p50": median(watch_spans) if watch_spans else None,
        "tasks": {
            task: {"wait_p50": median(waits[task]), "run_p50": median(durations[task])} for task in sorted(waits)
        },
        "watch_tasks": {
            task: {"started_after_queued_p50": median(watch_waits[task]), "run_p50": median(watch_runs[task])}
            for task in sorted(watch_waits)
        },
        "steps_p50": {step: round(median(seconds), 2) for step, seconds in steps.items()},
    }


LOCAL_SETTINGS = """from claimed_airflow.preload import preload

preload()
"""


def run_airflow(folder: Path, output_root: Path, args, one_by_one, at_once) -> tuple[dict, dict]:
    home = folder / "airflow"
    (home / "dags").mkdir(parents=True)
    if args.preload == "yes":  # as a deployment would: the scheduler imports them once, its task processes fork
        (home / "config").mkdir()
        (home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS)
    for name in ("dicom_inference.py", "dicom_inference_watch.py"):
        (home / "dags" / name).symlink_to(ROOT / "dags" / name)
    with orthanc.Orthanc(folder / "orthanc-airflow", StableAge=1) as pacs:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # the DAG processor registers an asset's watcher when it parses an unpaused DAG (once here: the interval)
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(args.parallelism),
            "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": str(args.parallelism),
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": str(args.idle_sleep),
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "120",
            "AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME": "3600",
            "AIRFLOW__CLAIMED__OUTPUT_ROOT": str(output_root),
            "CLAIMED_OUTPUT_ROOT": str(output_root),
            "AIRFLOW_CONN_DICOMWEB_DEFAULT": pacs.connection(),
            "CLAIMED_WATCH_INTERVAL": str(args.interval),
            "NO_PROXY": "127.0.0.1,localhost",
            # byte-code as an installed environment has it: this machine sets PYTHONDONTWRITEBYTECODE, and every
            # task process would compile pandas, pydicom, highdicom, ... from source (about 4 s a task here)
            "PYTHONPYCACHEPREFIX": str(folder / "pycache"),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([sys.executable, "-c", WARM_UP], check=True, env=env)  # the byte-code written once
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], check=True, capture_output=True, env=env)
        logs = folder / "logs"
        services = ("dag-processor", "scheduler", "triggerer")
        with airflow_ui(env, logs, services=services, start_timeout=900) as base:
            api = Api(base)
            api.unpause("dicom_inference")
            api.unpause("dicom_inference_watch")
            deadline = time.monotonic() + 600
            while "first start: " not in (logs / "triggerer.log").read_text(errors="replace"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the watcher did not start; see {logs / 'triggerer.log'}")
                time.sleep(1)
            time.sleep(1)  # the cursor is set (the line comes after it)
            latencies = measure(pacs, one_by_one, at_once, timeout=600, failed=api.failed)
            time.sleep(5)  # the prediction_log tasks after the SRs
            return latencies, where_the_time_goes(api, output_root)


def summary(name: str, result: dict) -> dict:
    def pct(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]

    row = {"path": name, "studies_per_min": round(result["studies_per_min"], 1), "load": round(os.getloadavg()[0], 1)}
    for mode in ("one_by_one", "at_once"):
        row[f"{mode}_p50"] = round(pct(result[mode], 50), 2)
        row[f"{mode}_p95"] = round(pct(result[mode], 95), 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=20, help="studies one by one, and as many at once")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls of the change feed")
    parser.add_argument("--parallelism", type=int, default=4, help="Airflow's core parallelism")
    parser.add_argument("--model", choices=["flagship", "tiny"], default="flagship")
    parser.add_argument("--trained", type=Path, help="a model folder to publish instead of training one")
    parser.add_argument("--skip", choices=["none", "hand", "airflow"], default="none")
    parser.add_argument("--idle-sleep", type=float, default=1.0, help="[scheduler] scheduler_idle_sleep_time (s)")
    parser.add_argument("--preload", choices=["yes", "no"], default="yes", help="claimed_airflow.preload in Airflow")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    try:
        output_root = folder / "artifacts"
        seconds = publish_model(output_root / "models", args.model, folder, args.trained)
        print(json.dumps({"model": args.model, "published_s": round(seconds, 1)}), flush=True)
        model_folder = output_root / "models" / MODEL / "1"
        n = args.studies
        rows = []
        if args.skip != "hand":
            files = make_studies(folder / "hand", 2 * n, first=1)
            rows.append(summary("hand-written", run_hand_written(folder, model_folder, args, files[:n], files[n:])))
            print(json.dumps(rows[-1]), flush=True)
        if args.skip != "airflow":
            files = make_studies(folder / "airflow-studies", 2 * n, first=1001)
            latencies, parts = run_airflow(folder, output_root, args, files[:n], files[n:])
            rows.append(summary(f"airflow (preload {args.preload})", latencies))
            print(json.dumps(rows[-1]), flush=True)
            print(json.dumps(parts, indent=1), flush=True)
        if len(rows) == 2:
            hand, ours = rows
            ratios = {
                f"ratio_{m}_p50": round(ours[f"{m}_p50"] / hand[f"{m}_p50"], 2) for m in ("one_by_one", "at_once")
            }
            print(json.dumps({**ratios, "load_avg_1min": round(os.getloadavg()[0], 1)}), flush=True)
    finally:
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
