"""Killing a running task cleans up what it started: the pod, the spark-submit application, local worker processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.kube_stub import KubeStub


def context(task_id: str) -> dict:
    run_id = f"r-{time.monotonic_ns()}"
    ti = SimpleNamespace(dag_id="kills", run_id=run_id, task_id=task_id, map_index=-1, try_number=1)
    return {"ti": ti, "run_id": run_id, "dag": SimpleNamespace(), "outlet_events": {}, "params": {}}


def start(operator, ctx) -> dict:
    """``operator.execute`` in a thread (as the task runner would); ``outcome["error"]`` when it ends."""
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = operator.execute(ctx)
        except BaseException as exc:  # noqa: BLE001 - whatever ends the killed task is recorded
            outcome["error"] = exc

    outcome["thread"] = threading.Thread(target=run, daemon=True)
    outcome["thread"].start()
    return outcome


def until(condition, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def descendants() -> list:
    """Live processes started by this one, but multiprocessing's own helpers (they end with it)."""
    import psutil

    from claimed_airflow.operators.engines.local import multiprocessing_helpers

    helpers = multiprocessing_helpers()
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if p.pid not in helpers and p.is_running() and p.status() != "zombie"
    ]


class KubeletStub(KubeStub):
    """The Kubernetes API stub plus a stand-in kubelet: a created pod is a local process; DELETE ends it."""

    def __init__(self):
        super().__init__()
        self.processes: dict[str, subprocess.Popen] = {}

    def answer(self, method: str, path: str, body):
        if method == "DELETE" and "/pods/" in path:
            name = path.rsplit("/", 1)[-1]
            process = self.processes.get(name)
            if process is not None:
                process.terminate()
            return 200, {"kind": "Status", "status": "Success"}
        return super().answer(method, path, body)


@pytest.mark.e2e
def test_killing_a_kubernetes_task_deletes_its_pod(tmp_path, monkeypatch):
    """The KubernetesPodOperator started the pod (a stand-in kubelet runs it here); on_kill sends its DELETE."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    from claimed_airflow.operators import RowsFilterOperator

    table = tmp_path / "t.csv"
    table.write_text("a\n1\n")
    with KubeletStub() as stub:
        conn_id = stub.connection(tmp_path, monkeypatch, conn_id="k8s_kill")

        def execute(self, ctx):  # the pod is created and runs until it ends (a long container process here)
            self.pod = self.build_pod_request_obj(ctx, dry_run=True)
            process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
            stub.processes[self.pod.metadata.name] = process
            process.wait()
            raise RuntimeError(f"pod {self.pod.metadata.name} ended with {process.returncode}")

        monkeypatch.setattr(KubernetesPodOperator, "execute", execute)
        operator = RowsFilterOperator(
            task_id="filter",
            table=str(table),
            condition="a > 0",
            engine="kubernetes",
            kubernetes={"namespace": "ml", "conn_id": conn_id},
        )
        outcome = start(operator, context("filter"))
        until(lambda: stub.processes or outcome.get("error"), 60, what="the pod to start")
        assert "error" not in outcome, outcome.get("error")
        operator.on_kill()
        outcome["thread"].join(30)
    ((name, process),) = stub.processes.items()
    deletes = [r for r in stub.requests if r["method"] == "DELETE"]
    assert [r["path"] for r in deletes] == [f"/api/v1/namespaces/ml/pods/{name}"]
    assert deletes[0]["authorization"] == "Bearer stub-token"
    assert process.poll() is not None and "error" in outcome  # the pod is gone and the task ended


@pytest.mark.e2e
def test_killing_a_spark_task_kills_spark_submit(tmp_path, monkeypatch):
    """Real spark-submit with a local master, running a query that takes minutes; on_kill leaves no process."""
    if not shutil.which("spark-submit") or not shutil.which("java"):
        pytest.skip("spark-submit (pyspark) and Java are needed")
    from claimed_airflow.operators import SparkSqlTransformOperator

    table = tmp_path / "t.csv"
    table.write_text("a\n1\n2\n")
    slow = "SELECT count(*) AS n FROM range(100000000) a CROSS JOIN range(100000) b WHERE (a.id * b.id) % 7 = 3"
    operator = SparkSqlTransformOperator(task_id="sql", table=str(table), query=slow, backend="spark", engine="spark")
    before = {p.pid for p in descendants()}
    outcome = start(operator, context("sql"))

    def spark_running():
        hook = getattr(getattr(operator, "_engine_task", None), "started", None)  # the SparkSubmitHook
        process = getattr(hook, "_submit_sp", None)
        started = [p for p in descendants() if p.pid not in before and "java" in p.name()]
        return process if process is not None and started else None

    submit = until(spark_running, what="spark-submit and its JVM")
    time.sleep(3)  # the driver is running the query
    started = [p for p in descendants() if p.pid not in before]
    assert started and submit.poll() is None
    operator.on_kill()
    outcome["thread"].join(60)
    assert submit.poll() is not None  # spark-submit was killed
    until(lambda: not [p for p in started if p.is_running() and p.status() != "zombie"], 30, "Spark processes to end")
    assert "error" in outcome and "result" not in outcome


def test_killing_a_local_task_ends_its_worker_processes_and_removes_its_working_folder(tmp_path):
    """dicom_to_images decoding many files in a process pool; on_kill ends the workers, removes the folder."""
    from claimed_airflow.core.runner import working_folders
    from claimed_airflow.operators import DicomToImagesTransformOperator
    from tests.conftest import ROOT

    source = sorted((ROOT / "dags" / "sample_data" / "chestxray" / "dicom").glob("*.dcm"))[0]
    files = tmp_path / "files"
    files.mkdir()
    names = [f"{i:05d}.dcm" for i in range(4000)]
    for name in names:
        (files / name).symlink_to(source)
    metadata = tmp_path / "metadata.csv"
    metadata.write_text("file,label\n" + "".join(f"{n},{'ab'[i % 2]}\n" for i, n in enumerate(names)))
    operator = DicomToImagesTransformOperator(
        task_id="images", metadata=str(metadata), files=str(files), size=512, workers=2, engine="local"
    )
    before = {p.pid for p in descendants()}
    outcome = start(operator, context("images"))

    def pool_started():
        started = [p for p in descendants() if p.pid not in before]
        return started if len(started) >= 2 else None

    workers = until(pool_started, what="the two worker processes")
    folders = until(working_folders, what="the working folder")
    time.sleep(1)  # decoding
    assert all(Path(f).is_dir() for f in folders)
    operator.on_kill()
    assert not [p for p in workers if p.is_running() and p.status() != "zombie"]
    assert not [f for f in folders if Path(f).exists()]
    outcome["thread"].join(60)
    assert "the task was killed" in str(outcome.get("error"))  # the killed task did not pass for a finished one
    assert not [p for p in descendants() if p.pid not in before]  # and started no other workers
