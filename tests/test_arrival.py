"""PACS push: ``claimed-airflow listen`` receives studies from DCMTK's ``storescu`` and starts one run per study
through a real Airflow API server (``airflow api-server`` and ``dag-processor`` on loopback, password login);
killed and restarted mid-burst, and sent a study twice, it starts none twice."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest
from pydicom import dcmread

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.pacs.listener import STARTED_FILE, AirflowApi, Listener, study_key, study_run_id
from tests.arrival_studies import make_studies
from tests.service import Service
from tests.smtp_server import free_port

pytest.importorskip("pynetdicom")
STORESCU = shutil.which("storescu")
BIN = Path(sys.executable).parent
DAG = Path(__file__).resolve().parents[1] / "dags" / "dicom_inference.py"  # its Params check the conf


class AirflowServer(Service):
    """``airflow api-server`` and ``airflow dag-processor`` (the real ``dicom_inference`` DAG only) on a copy of
    the session's migrated database."""

    def __init__(self, folder: Path, database: Path):
        self.folder, self.port, self.password = folder, free_port(), secrets.token_hex(12)
        (folder / "dags").mkdir(parents=True)
        (folder / "dags" / "dicom_inference.py").symlink_to(DAG)  # parsed, never run (no scheduler)
        # through SQLite's backup API: a plain copy opens and closes the file in this process, which drops the
        # POSIX locks this process's own Airflow connections hold on it (SQLite's "how to corrupt", 2.2)
        with closing(sqlite3.connect(database)) as source, closing(sqlite3.connect(folder / "airflow.db")) as copy:
            source.backup(copy)
        (folder / "passwords.json").write_text(json.dumps({"listener": self.password}))
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(folder),
            "AIRFLOW__CORE__DAGS_FOLDER": str(folder / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{folder / 'airflow.db'}?timeout=60",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "listener:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(folder / "passwords.json"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",  # its access log is read
        }
        self.processor = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AirflowServer:
        try:
            return self._start()
        except BaseException:  # __exit__ is not called when __enter__ fails: stop what was started
            self.stop()
            raise

    def _start(self) -> AirflowServer:
        self.log = open(self.folder / "airflow.log", "wb")  # noqa: SIM115 - closed in stop()
        self.processor = subprocess.Popen(
            [str(BIN / "airflow"), "dag-processor"], env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.process = subprocess.Popen(
            [str(BIN / "airflow"), "api-server", "--port", str(self.port)],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 300  # about 45 s on 2 busy cores
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5).close()
                break
            except OSError:
                assert self.process.poll() is None, (self.folder / "airflow.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the API server did not start"
                time.sleep(0.5)
        self.api = AirflowApi(self.url, username="listener", password=self.password)
        deadline = time.monotonic() + 300
        while self.call("GET", "/dags/dicom_inference")[0] != 200:  # parsed by the DAG processor
            assert time.monotonic() < deadline, (self.folder / "airflow.log").read_text()[-3000:]
            time.sleep(1)
        return self

    def call(self, method: str, path: str) -> tuple[int, dict]:
        if not self.api.token:
            self.api._login()
        answer = self.api._request(method, f"/api/v2{path}", headers={"Authorization": f"Bearer {self.api.token}"})
        return answer.status_code, answer.json()

    def access_log(self) -> list[str]:
        return (self.folder / "airflow.log").read_text(errors="replace").splitlines()

    def runs(self) -> dict[str, dict]:
        """Every run of dicom_inference, page by page (the API answers at most 100 a page)."""
        runs: dict[str, dict] = {}
        while True:
            status, body = self.call("GET", f"/dags/dicom_inference/dagRuns?limit=100&offset={len(runs)}")
            assert status == 200, body
            runs.update((run["dag_run_id"], run["conf"]) for run in body["dag_runs"])
            if not body["dag_runs"] or len(runs) >= body["total_entries"]:
                return runs

    def stop(self) -> None:
        if self.processor:
            self.processor.terminate()
            self.processor.wait(30)
        super().stop()


class ListenCommand(Service):
    """``claimed-airflow listen`` in a subprocess (its log: ``listen-<n>.log``)."""

    def __init__(self, folder: Path, landing: Path, port: int, number: int, env: dict, more: tuple[str, ...] = ()):
        self.folder, self.landing, self.port, self.number, self.env = folder, landing, port, number, env
        self.more = list(more)

    def start(self) -> ListenCommand:
        command = [str(BIN / "claimed-airflow"), "listen", "--landing", str(self.landing), "--port", str(self.port)]
        command += ["--ae-title", "CLAIMED", "--allow", "MODALITY", "--settle", "2", *self.more]
        command += ["--conf", json.dumps({"model": "tiny"})]
        self.log = open(self.folder / f"listen-{self.number}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 120  # importing Airflow and pydicom: 8 s on 2 busy cores
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise AssertionError(f"the listener did not start: {self.text()[-2000:]}") from None
                time.sleep(0.1)

    def kill(self) -> None:
        if self.process:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        if self.log:
            self.log.close()

    def text(self) -> str:
        return (self.folder / f"listen-{self.number}.log").read_text()


def storescu(port: int, files: list[Path]) -> None:
    command = [STORESCU, "-aet", "MODALITY", "-aec", "CLAIMED", "127.0.0.1", str(port), *map(str, files)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.fixture(scope="module")
def airflow_api(airflow_home, tmp_path_factory):
    with AirflowServer(tmp_path_factory.mktemp("arrival-airflow"), airflow_home / "airflow.db") as server:
        yield server


@pytest.mark.skipif(STORESCU is None, reason="DCMTK is not installed (apt-get install -y dcmtk)")
def test_a_burst_of_50_studies_starts_50_runs_once_across_a_kill_a_restart_and_a_second_burst(airflow_api, tmp_path):
    before = set(airflow_api.runs())  # runs of earlier tests in this session's database (e.g. test_inference's)
    studies = make_studies(tmp_path / "studies", 50)
    landing, port = tmp_path / "landing", free_port()
    # the first listener reads the API's credentials from an Airflow connection, the second from its environment
    connection = {"conn_type": "http", "host": airflow_api.url, "login": "listener", "password": airflow_api.password}
    env = {**airflow_api.env, "AIRFLOW_CONN_ARRIVAL_API": json.dumps(connection)}
    first = ListenCommand(tmp_path, landing, port, 1, env, ("--airflow-conn-id", "arrival_api"))
    try:
        first.start()
        storescu(port, [f for files in studies.values() for f in files])  # 50 studies, one association
        wait_for(lambda: len(airflow_api.runs()) >= 1, "no run started")
    finally:
        first.kill()  # mid-burst: some runs started, the others landed and waiting
    started = [key for key in map(study_key, studies) if (landing / key / STARTED_FILE).exists()]
    for key in started[:5]:  # as if killed between Airflow's answer and the marker: Airflow has the run, we forgot
        (landing / key / STARTED_FILE).unlink()
    env = {**airflow_api.env, "CLAIMED_AIRFLOW_API_URL": airflow_api.url, "CLAIMED_AIRFLOW_API_USERNAME": "listener"}
    env["CLAIMED_AIRFLOW_API_PASSWORD"] = airflow_api.password
    with ListenCommand(tmp_path, landing, port, 2, env) as second:
        storescu(port, [f for files in list(studies.values())[:5] for f in files])  # a second burst: the same studies
        wait_for(lambda: all((landing / study_key(uid) / STARTED_FILE).exists() for uid in studies), "not all started")
    runs = {run_id: conf for run_id, conf in airflow_api.runs().items() if run_id not in before}
    assert sorted(runs) == sorted(study_run_id(uid) for uid in studies)
    for uid, files in studies.items():
        conf = runs[study_run_id(uid)]
        assert conf["study_instance_uid"] == uid and conf["model"] == "tiny" and conf["arrived_at"]
        assert Path(conf["source"]) == (landing / study_key(uid)).resolve()
        (landed,) = [p for p in Path(conf["source"]).iterdir() if not p.name.startswith(".")]
        got, sent = dcmread(landed), dcmread(files[0])
        assert (got.SOPInstanceUID, got.PixelData) == (sent.SOPInstanceUID, sent.PixelData)
    # the API server's access log: each run created by one request; the restarted listener's requests for runs
    # that Airflow had (the 5 forgotten ones, and any whose start the kill cut off before its log line) got 409
    logs = first.text() + second.text()
    already = logs.count("already exists (started before)")
    assert already >= min(5, len(started))

    def answers(status: int) -> int:  # the API server logs a request once it has answered it: wait for the line
        line = f"method=POST path=/api/v2/dags/dicom_inference/dagRuns query= status_code={status}"
        return sum(line in x for x in airflow_api.access_log())

    wait_for(lambda: answers(200) == 50 and answers(409) == already, f"not 50 runs made and {already} refused")
    assert first.text().count("started run study__") + second.text().count("started run study__") <= 50
    assert "stopped; instances 5, refused 0, started" in second.text()
    assert not any(uid in logs or f"P{n}" in logs.split() for n, uid in enumerate(studies, 1))  # no identifiers


def test_a_bad_instance_or_an_unknown_sender_is_refused_and_a_failed_start_is_tried_again(tmp_path):
    from pynetdicom import AE
    from pynetdicom.sop_class import ComputedRadiographyImageStorage

    answers = []

    def start_run(dag_id: str, run_id: str, conf: dict) -> bool:
        answers.append(run_id)
        if len(answers) == 1:
            raise ClaimedError("Airflow API: starting a run of dicom_inference answered 503")
        return True

    listener = Listener(tmp_path / "landing", start_run, port=0, allowed_calling=["MODALITY"], settle=0.01, retry=0)
    listener.open()
    try:
        ((uid, (path,)),) = make_studies(tmp_path / "studies", 1).items()
        good, bad = dcmread(path), dcmread(path)
        del bad.StudyInstanceUID
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(ComputedRadiographyImageStorage, good.file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", listener.port, ae_title="CLAIMED")
        assert assoc.is_established
        assert assoc.send_c_store(bad).Status == 0xC000  # cannot understand: no StudyInstanceUID
        assert assoc.send_c_store(good).Status == 0x0000
        assoc.release()
        stranger = AE(ae_title="STRANGER")
        stranger.add_requested_context(ComputedRadiographyImageStorage, good.file_meta.TransferSyntaxUID)
        assert not stranger.associate("127.0.0.1", listener.port, ae_title="CLAIMED").is_established
    finally:
        listener.server.shutdown()
    key = study_key(uid)
    assert listener.counts["refused"] == 1 and listener.counts["instances"] == 1
    for _ in range(2):  # Airflow answers 503 once: the study stays pending and is started on the next try
        for due in listener.due(now=time.time() + 1):  # past the settle time
            listener.start(due)
    assert answers == [f"study__{key}", f"study__{key}"] and listener.counts["started"] == 1
    assert (tmp_path / "landing" / key / STARTED_FILE).read_text() == f"study__{key}"


def test_the_api_login_fails_with_one_line_and_a_wrong_conf_is_refused(airflow_api):
    with pytest.raises(ClaimedError, match=r"^Airflow API http://127.0.0.1:\d+: /auth/token answered 401"):
        AirflowApi(airflow_api.url, username="listener", password="wrong").trigger("dicom_inference", "x", {})
    with pytest.raises(ClaimedError, match="starting a run of dicom_inference answered 400"):
        airflow_api.api.trigger("dicom_inference", "study__bad", {"study_instance_uid": "not a uid", "source": "x"})


def test_the_kubernetes_listener_runs_a_valid_listen_command_from_an_image_with_pynetdicom():
    import tomllib

    import yaml

    from claimed_airflow.cli import build_parser

    root = Path(__file__).resolve().parents[1]
    documents = list(yaml.safe_load_all((root / "docker" / "listener.yaml").read_text()))
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.func.__name__ == "listen_command" and args.bind == "0.0.0.0" and args.landing == "/data/landing"
    assert {"name": "landing", "mountPath": args.landing} in container["volumeMounts"]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(p.startswith("pynetdicom") for p in extras["pacs"])  # the SCP; requests comes with dicomweb-client
    assert "--build-arg EXTRAS=pacs" in (root / "docker" / "listener.yaml").read_text()


def test_the_landing_area_on_an_object_store_is_read_by_a_run_and_rescanned_after_a_restart(
    tmp_path,
    s3_endpoint,
):
    from pynetdicom import AE
    from pynetdicom.sop_class import ComputedRadiographyImageStorage

    from claimed_airflow.core.runner import run

    started = []
    fs, landing = s3_endpoint, "s3://claimed/landing"
    first = Listener(landing, lambda *call: started.append(call) or True, port=0, settle=0.01)
    first.open()
    try:
        ((uid, files),) = make_studies(tmp_path / "studies", 1, instances=2).items()
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(ComputedRadiographyImageStorage, dcmread(files[0]).file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", first.port, ae_title="CLAIMED")
        assert assoc.is_established
        assert [assoc.send_c_store(dcmread(f)).Status for f in files] == [0, 0]
        assoc.release()
    finally:
        first.server.shutdown()
    key = study_key(uid)
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.find(f"claimed/landing/{key}"))
    assert len(names) == 3 and names[0] == ".study.json" and all(n.endswith(".dcm") for n in names[1:])
    # killed before it started the run: a new listener finds the study in the object store and starts it once
    second = Listener(landing, lambda *call: started.append(call) or True, port=0, settle=0.01)
    assert second.rescan() == 1
    for due in second.due(now=time.time() + 60):
        second.start(due)
    ((dag_id, run_id, conf),) = started
    assert (dag_id, run_id, conf["source"]) == ("dicom_inference", study_run_id(uid), f"{landing}/{key}")
    assert fs.cat_file(f"claimed/landing/{key}/{STARTED_FILE}") == run_id.encode()
    assert Listener(landing, started.append, port=0).rescan() == 0
    read = run("input.dicom", {"source": conf["source"]}, root=str(tmp_path / "out"))  # its retrieve step
    table = pd.read_parquet(read["metadata"])
    assert sorted(table["SOPInstanceUID"]) == sorted(str(dcmread(f).SOPInstanceUID) for f in files)
