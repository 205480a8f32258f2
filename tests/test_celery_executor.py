"""Many workers, no shared disk: the flagship under Airflow's CeleryExecutor.

Redis (Debian's ``redis-server``, on loopback) is the broker; the scheduler, the DAG processor and the API server
share the session's metadata database; two Celery workers share no folder with them or with each other (each its
own AIRFLOW_HOME, DAG folder copy, working directory, TMPDIR, logs, and no metadata database: Airflow 3 workers
talk to the API server). The data and every output are on an object store (the moto S3 server). The ``train``
task goes to the ``gpu`` queue by the setting ``gpu_queue`` alone (the DAG is not edited); one worker serves that
queue only, the other the default queue only, so consecutive tasks run in different workers. Each deterministic
step, run again in the test process on the same inputs, writes the same bytes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from claimed_airflow.core.storage import safe_name
from tests.flagship import FLAGSHIP_FAST, FLAGSHIP_PRELOAD, deterministic_hashes, rerun_in_process
from tests.service import Service
from tests.test_scheduled_runs import Api
from tests.ui.airflow_ui import airflow_ui, free_port, preload_env

# a real scheduler, two Celery workers and an API server on one SQLite file: not under pytest-xdist (CI: its own
# pytest process, beside the workers)
pytestmark = pytest.mark.serial

DAG_ID = "dicom_to_deployment"
REDIS = shutil.which("redis-server")
BUCKET = "claimed"
ROOT = f"s3://{BUCKET}/celery"  # the Celery run's outputs
REPOSITORY = Path(__file__).resolve().parents[1]


def needs_celery() -> str | None:
    """Why the e2e test cannot run here, or None."""
    if REDIS is None:
        return "needs redis-server (Debian package redis-server) as the Celery broker"
    for module, extra in (("airflow.providers.celery", "apache-airflow-providers-celery"), ("redis", "redis")):
        if importlib.util.find_spec(module) is None:
            return f"needs {extra} (the celery extra)"
    if importlib.util.find_spec("torchvision") is None:
        return "the flagship trains with PyTorch here (the torch extra)"
    return None


def test_gpu_components_go_to_the_gpu_queue_unless_a_queue_is_set(monkeypatch):
    """The setting ``gpu_queue`` routes tasks of GPU components; a task's or the DAG's own queue wins."""
    from airflow.providers.common.compat.sdk import DAG

    from claimed_airflow.operators import ClaimedOperator, MobileNetV2TrainOperator, RowsFilterOperator

    def queues(default_args: dict) -> dict[str, str]:
        with DAG("queues", schedule=None, default_args=default_args) as dag:
            MobileNetV2TrainOperator(task_id="train", images="s3://b/images")
            MobileNetV2TrainOperator(task_id="own", images="s3://b/images", queue="big-gpu")
            ClaimedOperator(task_id="by_name", component="train.mobilenet_v2")
            RowsFilterOperator(task_id="cpu", table="s3://b/t.csv", condition="a > 1")
        return {task.task_id: task.queue for task in dag.tasks}

    monkeypatch.delenv("AIRFLOW__CLAIMED__GPU_QUEUE", raising=False)
    monkeypatch.delenv("CLAIMED_GPU_QUEUE", raising=False)
    assert set(queues({}).values()) == {"default", "big-gpu"}
    monkeypatch.setenv("CLAIMED_GPU_QUEUE", "gpu")
    assert queues({}) == {"train": "gpu", "own": "big-gpu", "by_name": "gpu", "cpu": "default"}
    assert queues({"queue": "site"}) == {"train": "site", "own": "big-gpu", "by_name": "site", "cpu": "site"}


class Redis(Service):
    """``redis-server`` on 127.0.0.1, nothing written to disk."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()

    def start(self) -> Redis:
        command = [REDIS, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.launch("redis", [*command, "--dir", str(self.folder)], self._answers)
        return self

    def _answers(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(16).startswith(b"+PONG"):
                raise OSError("redis is not ready")


class Worker(Service):
    """``airflow celery worker`` in a folder of its own: AIRFLOW_HOME, DAGs (a copy), cwd, TMPDIR, logs."""

    def __init__(self, folder: Path, name: str, queues: str, concurrency: int, env: dict[str, str]):
        self.folder, self.name, self.queues, self.concurrency = folder, name, queues, str(concurrency)
        (folder / "dags").mkdir(parents=True)
        (folder / "tmp").mkdir()
        shutil.copy(REPOSITORY / "dags" / f"{DAG_ID}.py", folder / "dags")
        self.env = {name: value for name, value in env.items() if name != "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"}
        self.env.update(
            {
                "AIRFLOW_HOME": str(folder),
                "AIRFLOW__CORE__DAGS_FOLDER": str(folder / "dags"),
                "TMPDIR": str(folder / "tmp"),
                "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                    {"type": "file", "log_file_path": str(folder / "openlineage.jsonl"), "append": True}
                ),
            }
        )

    def start(self) -> Worker:
        command = [str(Path(sys.executable).parent / "airflow"), "celery", "worker", "--queues", self.queues]
        command += ["--concurrency", self.concurrency, "--celery-hostname", f"{self.name}@%h", "--skip-serve-logs"]
        command += ["--without-mingle", "--without-gossip"]
        path = self.folder / f"worker-{self.name}.log"
        self.log = open(path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env=self.env, cwd=self.folder
        )
        return self

    def ready(self) -> Worker:
        """Wait until Celery consumes the worker's queues (Airflow's imports take a minute on busy cores)."""
        path = self.folder / f"worker-{self.name}.log"
        deadline = time.monotonic() + 600
        while " ready." not in path.read_text(errors="replace"):  # Celery's "celery@host ready."
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited: {path.read_text(errors='replace')[-2000:]}")
            assert time.monotonic() < deadline, f"worker {self.name} did not start: see {path}"
            time.sleep(1)
        return self

    def ran(self) -> set[str]:
        """The task ids whose logs this worker wrote (under its own AIRFLOW_HOME)."""
        found = (self.folder / "logs" / f"dag_id={DAG_ID}").glob("run_id=*/task_id=*")
        return {path.name.removeprefix("task_id=") for path in found}


@pytest.fixture(scope="module")
def celery(airflow_home, s3_endpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("celery")
    redis = Redis(folder).start()
    broker = f"redis://127.0.0.1:{redis.port}"
    env = dict(os.environ)  # the moto server's AWS_* variables included
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"{broker}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"{broker}/1",
            "AIRFLOW__CLAIMED__OUTPUT_ROOT": ROOT,
            "CLAIMED_OUTPUT_ROOT": ROOT,
            "AIRFLOW__CLAIMED__GPU_QUEUE": "gpu",  # read while the DAG is parsed: train's queue
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",  # parse each DAG file once
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "120",  # a busy machine: slow answers, not failures
            "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "10",
            "AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME": "3600",
            "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    env.update(preload_env(folder / "settings", FLAGSHIP_PRELOAD, env))  # the Celery workers' task processes
    logs = folder / "logs"
    workers = []
    try:
        with airflow_ui(env, logs, services=("dag-processor", "scheduler"), start_timeout=900) as base:
            worker_env = dict(env, AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{base}/execution/")
            workers.append(Worker(folder / "cpu", "cpu", "default", 2, worker_env).start())
            workers.append(Worker(folder / "gpu", "gpu", "gpu", 1, worker_env).start())
            for worker in workers:  # both start at once
                worker.ready()
            yield SimpleNamespace(api=Api(base, logs), cpu=workers[0], gpu=workers[1], logs=logs)
    finally:
        for worker in workers:
            worker.stop()
        redis.stop()


def upload_cohort(fs, cohort: dict, prefix: str) -> dict:
    """The small cohort on the object store: the workers read their input from there, not from this disk."""
    fs.put(cohort["dicom_source"], f"{BUCKET}/{prefix}/dicom", recursive=True)
    fs.put(cohort["labels"], f"{BUCKET}/{prefix}/labels.csv")
    return {"dicom_source": f"s3://{BUCKET}/{prefix}/dicom", "labels": f"s3://{BUCKET}/{prefix}/labels.csv"}


def read(fs, path: str) -> dict:
    return json.loads(fs.cat(path))


@pytest.mark.e2e
@pytest.mark.timeout(1200)
@pytest.mark.skipif(needs_celery() is not None, reason=str(needs_celery()))
def test_the_flagship_on_two_celery_workers_sharing_no_disk(celery, s3_endpoint, small_cohort, tmp_path):
    fs, api = s3_endpoint, celery.api
    data = upload_cohort(fs, small_cohort, "celery-cohort")
    conf = {**FLAGSHIP_FAST, **data, "engine": "local"}
    api.ready(DAG_ID)
    run_id = api.trigger(DAG_ID, conf)
    state = api.finished(DAG_ID, run_id, timeout=900)
    tasks = api.tasks(DAG_ID, run_id)
    assert state == "success", tasks
    assert {task for task, task_state in tasks.items() if task_state != "success"} == {"kserve", "watson_ml"}, tasks
    # train ran in the gpu-queue worker only, every other task in the other worker
    assert celery.gpu.ran() == {"train"}, celery.gpu.ran()
    assert "train" not in celery.cpu.ran() and {"dicom_input", "predict", "deploy"} <= celery.cpu.ran()
    queues = {
        ti["task_id"]: ti["queue"]
        for ti in api.call("GET", f"{api.run_path(DAG_ID, run_id)}/taskInstances")["task_instances"]
    }
    assert queues["train"] == "gpu" and queues["predict"] == "default", queues
    # every output and manifest on the object store; the deployed model there too
    deployed = json.loads(fs.cat(f"{ROOT}/{DAG_ID}/{safe_name(run_id)}/deploy/manifest.json"))["values"]
    assert deployed["model_uri"].startswith(f"{ROOT}/models/chestxray_mobilenet_v2/")
    assert fs.exists(f"{deployed['model_uri']}/model.onnx")
    # nothing a task handed on names a worker's disk: every input and output of every manifest is on the store
    manifests = fs.glob(f"{ROOT}/{DAG_ID}/{safe_name(run_id)}/*/manifest.json")
    written = {path.split("/")[-2] for path in manifests}  # a mapped task's: <task_id>_shard_<index>
    assert {"dicom_input", "cohort", "dicom_to_images", "train", "predict", "reference_profile", "deploy"} <= written
    uris = [
        item["uri"] for path in manifests for kind in ("inputs", "outputs") for item in read(fs, path)[kind].values()
    ]
    assert uris and all(uri.startswith("s3://") for uri in uris), [uri for uri in uris if not uri.startswith("s3://")]

    # each deterministic step run again in this process (what engine local runs in a worker) on the same inputs
    # writes the same bytes: the workers' outputs are the ones one process gets
    def manifest_of(task: str) -> Path:
        local = tmp_path / task / "manifest.json"
        local.parent.mkdir(exist_ok=True)
        fs.get(f"{ROOT}/{DAG_ID}/{safe_name(run_id)}/{task}/manifest.json", str(local))
        return local

    assert rerun_in_process(manifest_of, str(tmp_path / "reference")) == deterministic_hashes(manifest_of)
