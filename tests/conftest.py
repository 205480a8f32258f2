"""Test set-up: a throw-away AIRFLOW_HOME and dags folder, configured before Airflow is imported."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
BIN = Path(sys.executable).parent

_home = Path(tempfile.mkdtemp(prefix="claimed-airflow-home-"))
_dags = _home / "dags"
_dags.mkdir()
for source in [*(ROOT / "dags").iterdir(), *(ROOT / "tests" / "dags").glob("*.py")]:
    if source.name != "__pycache__":
        (_dags / source.name).symlink_to(source)
os.environ.update(
    {
        "AIRFLOW_HOME": str(_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(_dags),
        # the scheduled runs put a scheduler, a triggerer, an API server and tasks on one SQLite file and 2
        # cores: wait up to 60 s for another process's write lock instead of sqlite3's 5 s ("database is locked")
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_home / 'airflow.db'}?timeout=60",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CLAIMED__OUTPUT_ROOT": str(_home / "artifacts"),
        "CLAIMED_OUTPUT_ROOT": str(_home / "artifacts"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(_home / "openlineage.jsonl"), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "claimed-tests",
        # engine=spark: spark-submit (the venv's, on PATH below) with a local master; Spark binds 127.0.0.1
        "AIRFLOW_CONN_SPARK_DEFAULT": '{"conn_type": "spark", "host": "local[*]"}',
        "SPARK_LOCAL_IP": "127.0.0.1",
        # the tests' Spark jobs are seconds long: their JVMs compile with C1 only and one GC thread, which takes
        # about a third less CPU (test_spark_etl_dag_runs_through_spark_submit: 145 -> 91 CPU-s), nothing else
        "SPARK_SUBMIT_OPTS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
)


# the slowest modules first (measured with --durations, two workers): pytest-xdist's --dist loadfile hands modules out
# in collection order, so the long ones start early and the short ones fill the other worker, instead of a tail of
# long modules late in the alphabet running one after another
SLOW_FIRST = (
    "test_training_outcome.py",
    "test_cli.py",
    "test_flagship_engines.py",
    "test_torch_training.py",
    "test_spark.py",
    "test_retraining.py",
    "test_components.py",
    "test_pacs.py",
    "test_pacs_dimse.py",
    "test_kubernetes_engine.py",
    "test_airflow_versions.py",
    "test_ui.py",
    "test_arrival.py",
    "test_sql_allowlist.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: place for place, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module's own order kept


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_home, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """AIRFLOW_HOME with a migrated SQLite metadata database (real ``airflow db migrate``)."""
    if not (_home / "airflow.db").exists():
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], check=True, capture_output=True, env=os.environ)
    return _home


@pytest.fixture(scope="session")
def openlineage_events() -> Path:
    """The file the OpenLineage provider's file transport appends events to (one JSON per line)."""
    return _home / "openlineage.jsonl"


@pytest.fixture(scope="session")
def output_root() -> Path:
    return _home / "artifacts"


@pytest.fixture(scope="session")
def run_dag(airflow_home):
    """Run a DAG of the dags folder with ``dag.test()``; returns (state, {task_id: state}, run_id)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(_dags))
    assert not bag.import_errors, bag.import_errors

    defaults: dict[str, dict] = {}

    def run(dag_id: str, conf: dict | None = None):
        dag = bag.get_dag(dag_id)
        # every Param explicitly, as first parsed: dag.test() keeps a run's conf in the DAG's Params, and this
        # DagBag lives for the session, so one test's conf (notify_to, deploy_target) would reach the next run
        defaults.setdefault(dag_id, json.loads(json.dumps(dag.params.dump())))
        dag_run = dag.test(run_conf={**defaults[dag_id], **(conf or {})})
        states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
        return str(dag_run.state), states, dag_run.run_id

    return run


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory) -> dict:
    """The flagship's data Params for runs whose subject is not what the model learns: 40 synthetic CR phantoms
    (tests/synthetic_chestxray.py, another seed than the bundled 400), written once per test session."""
    from tests.synthetic_chestxray import write_cohort

    folder = tmp_path_factory.mktemp("small_cohort")
    write_cohort(folder, count=40, seed=3)
    return {"dicom_source": str(folder / "dicom"), "labels": str(folder / "labels.csv")}


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def dicom_folder(tmp_path, shared_data) -> Path:
    """Real DICOM files (uncompressed and compressed) plus one truncated file and one text file."""
    folder = tmp_path / "dicom"
    (folder / "nested").mkdir(parents=True)
    for name in ("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "JPGExtended.dcm"):
        shutil.copy(shared_data / "dicom" / "pydicom" / name, folder / name)
    shutil.copy(shared_data / "dicom" / "highdicom" / "dx_image.dcm", folder / "nested" / "dx_image.dcm")
    data = (shared_data / "dicom" / "pydicom" / "CT_small.dcm").read_bytes()
    (folder / "truncated.dcm").write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("not a DICOM file\n")
    return folder


@pytest.fixture
def small_predictions(tmp_path) -> Path:
    """Four predictions: labels a, a, b, b predicted as a, b, b, b (accuracy 0.75)."""
    path = tmp_path / "predictions.csv"
    path.write_text("label,prediction\na,a\na,b\nb,b\nb,b\n")
    return path


@pytest.fixture
def smtp(monkeypatch):
    """A real SMTP server on 127.0.0.1 and Airflow connections ``smtp_test`` and ``smtp_default`` to it."""
    controller_module = pytest.importorskip("aiosmtpd.controller")
    from tests.smtp_server import Inbox, free_port

    inbox, port = Inbox(), free_port()
    controller = controller_module.Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    extra = {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@example.com", "retry_limit": 0}
    conn = json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": extra})
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_TEST", conn)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", conn)
    yield inbox
    controller.stop()


@pytest.fixture(scope="module")
def s3_endpoint():
    """A real S3 API: a moto server on 127.0.0.1 (one per test module), reached through s3fs; bucket ``claimed``."""
    pytest.importorskip("s3fs")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": url,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    fs.mkdir("claimed")
    yield fs
    server.terminate()
    server.wait(10)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def isolated_env():
    """The process environment restored after the test (ibm-watsonx-ai sets process-wide variables:
    WX_CLIENT_VERIFY_REQUESTS, DEPLOYMENT_PLATFORM, ...); loopback servers reached without a proxy."""
    saved = dict(os.environ)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def spark_submissions(monkeypatch) -> list[list[str]]:
    """The spark-submit commands the apache.spark provider's SparkSubmitHook builds during the test, in order
    (they still run)."""
    pytest.importorskip("pyspark")
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    submitted = []
    original = SparkSubmitHook._build_spark_submit_command

    def record(self, application):
        command = original(self, application)
        submitted.append(command)
        return command

    monkeypatch.setattr(SparkSubmitHook, "_build_spark_submit_command", record)
    return submitted


@pytest.fixture
def local_kubelet(tmp_path, monkeypatch):
    """KubernetesPodOperator.execute replaced by a stand-in kubelet: the pod is built, its command run here
    (``tests.test_kubernetes_engine.run_pod_command``); returns the pods, in order."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    from tests.test_kubernetes_engine import run_pod_command

    pods = []

    def execute(self, context):
        pod = self.build_pod_request_obj(context, dry_run=True)
        pods.append(pod)
        return run_pod_command(pod, tmp_path / f"xcom-{len(pods)}.json")

    monkeypatch.setattr(KubernetesPodOperator, "execute", execute)
    return pods
