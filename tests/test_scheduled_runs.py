"""The way users run it: scheduler (LocalExecutor), DAG processor, API server and triggerer on loopback, as
``airflow standalone`` does, with runs triggered and answered through Airflow's REST API as the UI does.

One set-up (module fixture) serves three tests: the flagship triggered three times at once (two deploy, with
distinct model versions; a reviewer approves one of them and rejects the third), and a claimed operator whose
wait runs in the triggerer against the Kubernetes API stub.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from claimed_airflow.core.storage import safe_name
from tests.flagship import FLAGSHIP_PRELOAD
from tests.kube_stub import InferenceServiceStub
from tests.ui.airflow_ui import airflow_ui, preload_env

# a real scheduler, triggerer and API server on one SQLite file: not under pytest-xdist (CI: its own pytest
# process, beside the workers)
pytestmark = [pytest.mark.e2e, pytest.mark.serial, pytest.mark.timeout(2400)]
# small, PyTorch (three runs train at once on 2 cores), and the gate blesses any model
SMALL = {"epochs": 1, "image_size": 32, "min_accuracy": 0.0, "min_over_majority": -1.0, "framework": "torch"}


class Api:
    """Airflow's public REST API with the JWT the UI gets (``/auth/token``)."""

    def __init__(self, base: str, logs: Path):
        self.base, self.log, self.scheduler_log = base, logs / "api-server.log", logs / "scheduler.log"
        with urllib.request.urlopen(f"{base}/auth/token", timeout=30) as answer:
            self.token = json.load(answer)["access_token"]

    def call(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(
            f"{self.base}/api/v2{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        for attempt in range(5):  # the API server shares 2 cores with the scheduler, the triggerer and tasks
            try:
                with urllib.request.urlopen(request, timeout=120) as answer:
                    return json.load(answer)
            except urllib.error.HTTPError as exc:
                if exc.code >= 500:  # the cause is in the API server's log, not in the answer
                    raise AssertionError(f"{method} {path}: {exc}\n{self.errors()}") from exc
                raise
            except (TimeoutError, urllib.error.URLError):
                if attempt == 4:
                    raise
                time.sleep(5)

    def errors(self, lines: int = 60) -> str:
        """The end of the API server's log from its last traceback on."""
        text = self.log.read_text(errors="replace").splitlines()
        start = max((i for i, line in enumerate(text) if "Traceback" in line), default=len(text) - lines)
        return "\n".join(text[start:][-lines:])

    def ready(self, dag_id: str, timeout: float = 300) -> None:
        """Wait until the DAG processor has parsed the DAG, then unpause it (as the UI's toggle does)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.call("GET", f"/dags/{dag_id}")
                break
            except urllib.error.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
        self.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict) -> str:
        return self.call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})["dag_run_id"]

    def run_path(self, dag_id: str, run_id: str) -> str:
        return f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"

    def finished(self, dag_id: str, run_id: str, timeout: float = 1800) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.call("GET", self.run_path(dag_id, run_id))["state"]
            if state in ("success", "failed"):
                return state
            assert time.monotonic() < deadline, f"{dag_id} {run_id} still {state}: {self.tasks(dag_id, run_id)}"
            time.sleep(5)

    def tasks(self, dag_id: str, run_id: str) -> dict[str, str]:
        found = self.call("GET", f"{self.run_path(dag_id, run_id)}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in found}

    def hitl(self, dag_id: str, run_id: str, task_id: str, timeout: float = 1800) -> dict:
        """The task's human-in-the-loop request, once Airflow can take the answer.

        That is: the task waits for input (``awaiting_input``; ``deferred`` before Airflow 3.3) and the
        scheduler has processed the executor's event for the process that asked (its "TaskInstance
        Finished" line). An answer before that event resumes the task while the event is in flight,
        and the scheduler then fails the resumed try ("finished with state success, but the task
        instance's state attribute is queued"; apache/airflow#67287, #72716).
        """
        ti_path = f"{self.run_path(dag_id, run_id)}/taskInstances/{task_id}"
        deadline = time.monotonic() + timeout
        while True:
            ti = self.call("GET", ti_path)
            if ti["state"] in ("awaiting_input", "deferred") and self.parked(task_id, run_id, ti["state"]):
                return self.call("GET", f"{ti_path}/-1/hitlDetails")
            state = self.call("GET", self.run_path(dag_id, run_id))["state"]
            assert state in ("queued", "running"), f"{run_id} ended ({state}): {self.tasks(dag_id, run_id)}"
            assert ti["state"] not in ("success", "failed", "upstream_failed", "skipped", "removed"), (
                f"{task_id} of {run_id} will not ask: {self.tasks(dag_id, run_id)}"
            )
            assert time.monotonic() < deadline, f"{task_id} of {run_id} never asked ({ti['state']})"
            time.sleep(2)

    def parked(self, task_id: str, run_id: str, state: str) -> bool:
        """The scheduler has processed the executor's event for the process that left the task in ``state``
        (``deferred``, ``awaiting_input``): its "TaskInstance Finished" line. A resume before it races it."""
        finished = ("TaskInstance Finished:", f"task_id={task_id}, run_id={run_id},", f"state={state}, executor=")
        lines = self.scheduler_log.read_text(errors="replace").splitlines()
        return any(all(part in line for part in finished) for line in lines)

    def answer(self, dag_id: str, run_id: str, task_id: str, option: str) -> dict:
        path = f"{self.run_path(dag_id, run_id)}/taskInstances/{task_id}/-1/hitlDetails"
        return self.call("PATCH", path, {"chosen_options": [option], "params_input": {}})


class ReadyAfterPolls(InferenceServiceStub):
    """InferenceServices that become Ready at the ``polls``-th read, as a cluster does after a while, and not
    before ``gate()`` (if set) says so."""

    def __init__(self, polls: int):
        super().__init__(ready=False)
        self.polls, self.reads, self.gate = polls, 0, None

    def answer(self, method: str, path: str, body):
        if method == "GET" and self.objects:
            self.reads += 1
            if self.reads >= self.polls and not self.ready and (self.gate is None or self.gate()):
                self.ready = True
                for key, obj in list(self.objects.items()):
                    self.store(key, obj, obj["metadata"]["resourceVersion"])
        return super().answer(method, path, body)


@pytest.fixture(scope="module")
def airflow(airflow_home, tmp_path_factory):
    folder = tmp_path_factory.mktemp("scheduled")
    stub = ReadyAfterPolls(polls=4)
    extra = {"kube_config_path": stub.kubeconfig(folder / "k8s_e2e.kubeconfig.json"), "namespace": "models"}
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",  # what `airflow standalone` runs, here on SQLite too
            "AIRFLOW__CORE__PARALLELISM": "4",  # 2 cores
            "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "4",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",  # parse each DAG file once
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "120",  # a busy machine: slow answers, not failures
            "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "10",
            # a task's token is made when it is queued; under load one waited 11 min for a worker, past the 10 min
            # default, and failed at its start with "Invalid auth token"
            "AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME": "3600",
            "AIRFLOW_CONN_K8S_E2E": json.dumps({"conn_type": "kubernetes", "extra": extra}),
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    env.update(preload_env(folder / "settings", FLAGSHIP_PRELOAD, env))  # the scheduler's task processes
    logs = folder / "logs"
    services = ("dag-processor", "scheduler", "triggerer")
    with airflow_ui(env, logs, services=services, start_timeout=900) as base:  # 4 processes start on 2 cores
        yield SimpleNamespace(api=Api(base, logs), stub=stub, logs=logs)
    stub.close()


def manifest(output_root: Path, dag_id: str, run_id: str, task_id: str) -> dict:
    return json.loads((output_root / dag_id / safe_name(run_id) / task_id / "manifest.json").read_text())


def test_a_deferrable_claimed_task_waits_in_the_triggerer(airflow, output_root, airflow_home):
    api = airflow.api
    api.ready("claimed_test_deferrable")
    run_id = api.trigger("claimed_test_deferrable", {})
    # Ready only once the scheduler has taken the deferring process's end: a trigger firing before that makes
    # Airflow 3.3's scheduler fail the resumed try ("state mismatch"; apache/airflow#71580, #72716)
    airflow.stub.gate = lambda: api.parked("kserve", run_id, "deferred")
    state = api.finished("claimed_test_deferrable", run_id, timeout=600)
    logs = airflow_home / "logs" / "dag_id=claimed_test_deferrable" / f"run_id={run_id}" / "task_id=kserve"
    text = "".join(path.read_text(errors="replace") for path in sorted(logs.rglob("*")) if path.is_file())
    assert state == "success", text[-6000:]
    result = manifest(output_root, "claimed_test_deferrable", run_id, "kserve")["values"]
    assert result == {
        "url": "http://xray.models.example.com",
        "service_name": "xray",
        "namespace": "models",
        "action": "created",
    }
    methods = [r["method"] for r in airflow.stub.requests]
    assert methods.count("POST") == 1 and methods.count("GET") >= 4  # created once; polled until Ready
    assert "inferenceservices/xray: not finished; next check in" in text  # PollTrigger's loop, in the triggerer
    assert "inferenceservices/xray: Ready" in text


def test_the_flagship_twice_at_once_and_a_reviewer_approves_one_and_rejects_another(airflow, output_root, small_cohort):
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("the torch extra is not installed")
    api, dag_id = airflow.api, "dicom_to_deployment"
    api.ready(dag_id)
    small = {**SMALL, **small_cohort}
    plain = api.trigger(dag_id, {**small, "require_approval": False})
    approved = api.trigger(dag_id, {**small, "require_approval": True})
    rejected = api.trigger(dag_id, {**small, "require_approval": True})
    for run_id, option in ((approved, "Approve"), (rejected, "Reject")):
        request = api.hitl(dag_id, run_id, "approval")
        assert request["options"] == ["Approve", "Reject"] and run_id in request["subject"]
        assert "| accuracy |" in request["body"] and "robustness" in request["body"].lower()
        assert "[confusion matrix](<file://" in request["body"] and "[LIME overlays](<" in request["body"]
        assert api.answer(dag_id, run_id, "approval", option)["chosen_options"] == [option]
    states = {run_id: api.finished(dag_id, run_id) for run_id in (plain, approved, rejected)}
    tasks = {run_id: api.tasks(dag_id, run_id) for run_id in states}
    assert states == dict.fromkeys(states, "success"), tasks
    assert tasks[plain]["approval"] == "success" and tasks[plain]["deploy"] == "success"
    assert tasks[approved]["approval"] == "success" and tasks[approved]["deploy"] == "success"
    assert tasks[rejected]["approval"] == "success" and tasks[rejected]["deploy"] == "skipped"
    deployed = [manifest(output_root, dag_id, run_id, "deploy")["values"] for run_id in (plain, approved)]
    assert deployed[0]["model_version"] != deployed[1]["model_version"]
    assert deployed[0]["model_uri"] != deployed[1]["model_uri"]
    trained = {manifest(output_root, dag_id, run_id, "train")["outputs"]["model"]["uri"] for run_id in states}
    assert len(trained) == 3  # each run its own outputs
    assert not (output_root / dag_id / safe_name(rejected) / "deploy").exists()
