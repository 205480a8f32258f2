"""Deferrable waits: the task defers, PollTrigger polls the loopback stub, the task resumes with the blocking result."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from tests.kube_stub import InferenceServiceStub, KubeStub

pytest.importorskip("airflow.providers.cncf.kubernetes")

ISVC = "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices"
TFJOBS = "/apis/kubeflow.org/v1/namespaces/ml/tfjobs"


def context(run_id: str = "r1", task_id: str = "deploy") -> dict:
    ti = SimpleNamespace(dag_id="deferrable", run_id=run_id, task_id=task_id, map_index=-1)
    return {"ti": ti, "outlet_events": {}}


def deferred(operator, ctx):
    """``execute``; the TaskDeferred it raises."""
    from airflow.sdk.exceptions import TaskDeferred

    with pytest.raises(TaskDeferred) as caught:
        operator.execute(ctx)
    return caught.value


def fire(trigger) -> dict:
    """The trigger rebuilt from its serialized form (as the triggerer does), run until its event."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))

    async def first():
        async for event in rebuilt.run():
            return event.payload

    return asyncio.run(first())


@contextlib.contextmanager
def blocking_check_refused():
    """The blocking Kubernetes check fails: the trigger must use the asynchronous one (kubernetes_asyncio)."""
    from claimed_airflow.components import _kubernetes

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_kubernetes, "condition_state", lambda **kwargs: pytest.fail("the blocking check ran"))
        yield


def resume(operator, ctx, task_deferred) -> dict:
    event = fire(task_deferred.trigger)
    return operator.execute_complete(ctx, event=event, **(task_deferred.kwargs or {}))


def test_a_serialized_trigger_runs_registered_checks_only_and_imports_nothing_else(tmp_path, monkeypatch):
    from claimed_airflow.core import waits
    from claimed_airflow.core.errors import ClaimedError
    from claimed_airflow.triggers import PollTrigger

    planted = tmp_path / "planted_check.py"
    planted.write_text("import pathlib\npathlib.Path(__file__).with_suffix('.ran').touch()\ncheck = print\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    known = "known: kubernetes.condition, watson_ml.deployment"
    for check in ("planted_check:check", "claimed_airflow.components._kubernetes:condition_state", ["x"]):
        trigger = PollTrigger(poll={"check": check, "kwargs": {}, "interval": 0.01}, deadline=time.time() + 60)
        message = f"check: {check!r} is not a registered status check ({known})"
        assert fire(trigger) == {"status": "error", "message": message}
    assert "planted_check" not in sys.modules and not planted.with_suffix(".ran").exists()
    with pytest.raises(ClaimedError, match=r"^check: \['x'\] is neither a registered status check \("):
        waits.Poll(["x"])  # type: ignore[arg-type]
    # a component's own module:function check is code of the task's, not serialized input: it polls in the task
    with waits.deferring():
        own = waits.Poll("planted_check:own", {"answer": "done"}, timeout=5, interval=0.01)
        planted.write_text("def own(answer):\n    return answer, {}\n")
        assert waits.wait(own) == ("done", {})  # no Deferral
    monkeypatch.delitem(sys.modules, "planted_check")
    for check in waits.CHECKS.values():  # each name resolves to its functions, with the same parameters
        blocking, watch = check.blocking(), check.watcher()
        assert watch is None or inspect.signature(watch).parameters == inspect.signature(blocking).parameters


def kserve_operator(conn_id: str, **more):
    from claimed_airflow.operators import KServeDeployOperator

    return KServeDeployOperator(
        task_id="deploy",
        storage_uri="s3://bucket/models/xray/3",
        service_name="xray",
        conn_id=conn_id,
        poll_interval=0.1,
        **more,
    )


def test_kserve_defers_polls_in_the_trigger_and_resumes_with_the_blocking_result(tmp_path, monkeypatch):
    with InferenceServiceStub() as stub:
        blocking = kserve_operator(stub.connection(tmp_path, monkeypatch, namespace="models"), deferrable=False)
        expected = blocking.execute(context())
    with InferenceServiceStub(ready=False) as stub:
        operator = kserve_operator(stub.connection(tmp_path, monkeypatch, namespace="models"), deferrable=True)
        task_deferred = deferred(operator, context())
        assert [(r["method"], r["path"]) for r in stub.requests] == [("GET", f"{ISVC}/xray"), ("POST", ISVC)]
        classpath, kwargs = task_deferred.trigger.serialize()
        assert classpath == "claimed_airflow.triggers.poll.PollTrigger"
        assert kwargs["poll"]["kwargs"]["conn_id"] == "k8s_stub"
        assert "stub-token" not in json.dumps(kwargs) + json.dumps(task_deferred.kwargs)  # no credentials
        assert task_deferred.method_name == "execute_complete"

        def become_ready():  # the cluster finishes after the trigger has polled three times
            waited = time.monotonic()
            while len([r for r in stub.requests[2:] if r["method"] == "GET"]) < 3 and time.monotonic() - waited < 60:
                time.sleep(0.01)
            stub.ready = True
            obj = stub.objects[("models", "xray")]
            stub.store(("models", "xray"), obj, obj["metadata"]["resourceVersion"])

        threading.Thread(target=become_ready).start()
        with blocking_check_refused():
            result = resume(operator, context(), task_deferred)
    polls = [r for r in stub.requests[2:] if r["method"] == "GET"]
    assert len(polls) >= 3  # polled by the trigger while not Ready
    assert not [r for r in stub.requests[2:] if r["method"] != "GET"]  # resuming created nothing again
    assert result == expected
    assert result["action"] == "created" and result["url"] == "http://xray.models.example.com"


def test_kserve_timeout_in_the_trigger_is_the_same_clear_error(tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    with InferenceServiceStub(ready=False) as stub:
        operator = kserve_operator(
            stub.connection(tmp_path, monkeypatch, namespace="models"), deferrable=True, ready_timeout=1
        )
        task_deferred = deferred(operator, context())
        with pytest.raises(AirflowFailException) as caught:
            resume(operator, context(), task_deferred)
    assert str(caught.value) == (
        "deploy.kserve: ready_timeout: InferenceService models/xray was not Ready after 1 s "
        "(last status: Ready=False: RevisionMissing no revision)"
    )


def tfjob_operator(**more):
    from claimed_airflow.operators import TfjobTrainOperator

    return TfjobTrainOperator(
        task_id="train",
        trainer="tests.trainers:logistic_german",
        job_root="s3://b/jobs",
        fixed={"epochs": 5},
        conn_id="k8s_stub",
        job_namespace="ml",
        poll_interval=0.05,
        timeout=10,
        **more,
    )


def conditions(*types: tuple[str, str]) -> tuple[int, dict]:
    return 200, {"status": {"conditions": [{"type": t, "status": "True", "message": m} for t, m in types]}}


def test_tfjob_resumes_with_the_same_job_and_a_failed_job_is_a_clear_error(tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    with KubeStub() as stub:
        stub.connection(tmp_path, monkeypatch)
        stub.routes[("POST", TFJOBS)] = [(201, {})]
        operator = tfjob_operator(deferrable=True)
        task_deferred = deferred(operator, context(task_id="train"))
        name = stub.requests[0]["body"]["metadata"]["name"]  # a random suffix, drawn once
        stub.routes[("GET", f"{TFJOBS}/{name}")] = [conditions(("Running", "")), conditions(("Succeeded", "done"))]
        with blocking_check_refused():
            result = resume(operator, context(task_id="train"), task_deferred)
        assert result["job_name"] == name and result["state"] == "Succeeded"
        assert [r["method"] for r in stub.requests] == ["POST", "GET", "GET"]  # submitted once, polled twice

        stub.requests.clear()
        failing = tfjob_operator(deferrable=True, job_name="german-lr")
        task_deferred = deferred(failing, context(run_id="r2", task_id="train"))
        stub.routes[("GET", f"{TFJOBS}/german-lr")] = [conditions(("Failed", "OOMKilled in worker-1"))]
        with pytest.raises(AirflowFailException, match=r"trainer: TFJob ml/german-lr failed: OOMKilled in worker-1"):
            resume(failing, context(run_id="r2", task_id="train"), task_deferred)


def test_the_asynchronous_kubernetes_check_answers_as_the_blocking_one(tmp_path, monkeypatch):
    """Same state, object and one-line errors; without a connection it reads the kubeconfig (as the blocking one)."""
    import kubernetes_asyncio.config.kube_config

    from claimed_airflow.components._kubernetes import KubeError, condition_state, watch_condition
    from claimed_airflow.core.errors import ClaimedError

    def acondition_state(*args):
        async def checked_twice():  # one client, two checks
            async with watch_condition(*args) as check:
                first = await check()
                assert await check() == first
                return first

        return checked_twice()

    with KubeStub() as stub:
        conn_id = stub.connection(tmp_path, monkeypatch)
        kubeconfig = stub.kubeconfig(tmp_path / "kubeconfig.json")
        monkeypatch.setattr(kubernetes_asyncio.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", kubeconfig)
        stub.routes[("GET", f"{TFJOBS}/j")] = [conditions(("Running", ""))]
        done = ("kubeflow.org/v1", conn_id, "ml", "tfjobs", "j", ["Succeeded", "Running"])
        expected = condition_state(*done)
        assert expected[0] == "Running"
        assert asyncio.run(acondition_state(*done)) == expected
        assert asyncio.run(acondition_state(done[0], None, *done[2:])) == expected  # kubeconfig
        missing = ("kubeflow.org/v1", conn_id, "ml", "tfjobs", "gone", ["Succeeded"])
        with pytest.raises(KubeError) as blocking:
            condition_state(*missing)
        with pytest.raises(KubeError) as asynchronous:
            asyncio.run(acondition_state(*missing))
        assert str(asynchronous.value) == str(blocking.value) and asynchronous.value.status == 404
        with pytest.raises(ClaimedError, match=r"^conn_id: Airflow connection 'k8s_nowhere' is not defined$"):
            asyncio.run(acondition_state(done[0], "k8s_nowhere", *done[2:]))
        monkeypatch.setitem(sys.modules, "kubernetes_asyncio.client", None)  # the kube-client extra alone
        assert asyncio.run(acondition_state(*done)) == expected  # the blocking check, in a thread


def test_katib_experiment_wait_defers(tmp_path, monkeypatch):
    from claimed_airflow.operators import HyperparametersTuneOperator

    base = "/apis/kubeflow.org/v1beta1/namespaces/ml"
    with KubeStub() as stub:
        stub.connection(tmp_path, monkeypatch)
        operator = HyperparametersTuneOperator(
            task_id="tune",
            trainer="tests.trainers:logistic_german",
            search_space={"epochs": [10, 20]},
            objective="accuracy",
            trials=2,
            backend="kubernetes",
            katib_namespace="ml",
            conn_id="k8s_stub",
            poll_interval=0.05,
            timeout=10,
            deferrable=True,
        )
        stub.routes[("POST", f"{base}/experiments")] = [(201, {})]
        task_deferred = deferred(operator, context(task_id="tune"))
        name = stub.requests[0]["body"]["metadata"]["name"]
        trial = {
            "metadata": {"name": f"{name}-a"},
            "spec": {"parameterAssignments": [{"name": "epochs", "value": "20"}]},
            "status": {
                "conditions": [{"type": "Succeeded", "status": "True"}],
                "observation": {"metrics": [{"name": "accuracy", "latest": "0.7"}]},
            },
        }
        stub.routes[("GET", f"{base}/experiments/{name}")] = [conditions(("Succeeded", ""))]
        stub.routes[("GET", f"{base}/trials")] = [(200, {"items": [trial]})]
        result = resume(operator, context(task_id="tune"), task_deferred)
    assert result["best_params"] == {"epochs": 20} and result["best_value"] == 0.7
    assert [r["method"] for r in stub.requests] == ["POST", "GET", "GET"]


def test_watson_ml_deployment_wait_defers(tmp_path, isolated_env):
    pytest.importorskip("ibm_watsonx_ai")
    from ibm_watsonx_ai.deployments import Deployments

    from claimed_airflow.operators import WatsonMLDeployOperator
    from tests.test_watson_ml import connection
    from tests.tiny_model import make_model_folder
    from tests.wml_stub import API_KEY, WatsonMLStub

    model = make_model_folder(tmp_path / "model")
    with WatsonMLStub(tmp_path) as stub:
        conn_id = connection(stub)
        operator = WatsonMLDeployOperator(
            task_id="wml", model=str(model), deployment_name="xray", conn_id=conn_id, poll_interval=0.05
        )
        operator.deferrable = True
        task_deferred = deferred(operator, context(task_id="wml"))
        assert API_KEY not in json.dumps(task_deferred.trigger.serialize()) + json.dumps(task_deferred.kwargs)
        assert task_deferred.trigger.serialize()[1]["poll"]["check"] == "watson_ml.deployment"
        with pytest.MonkeyPatch.context() as patch:  # the trigger reads the status with the async (httpx) client
            patch.setattr(Deployments, "get_details", lambda *a, **k: pytest.fail("the blocking status read"))
            result = resume(operator, context(task_id="wml"), task_deferred)
        calls = stub.calls()
    assert calls.count("POST /ml/v4/models") == 1 and calls.count("POST /ml/v4/deployments") == 1  # not twice
    assert calls.count(f"GET /ml/v4/deployments/{result['deployment_id']}") >= 1  # the trigger's check
    assert result["deployment_id"] == next(iter(stub.deployments))
    assert result["sample_label"] in ("dark", "light")


def test_kubernetes_engine_hands_deferrable_to_the_pod_operator_and_resumes_it(monkeypatch):
    """engine=kubernetes: the KubernetesPodOperator defers (its own trigger watches the pod); the claimed task
    defers in its place and, when resumed, hands the event back to the pod operator's ``trigger_reentry``."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk.exceptions import TaskDeferred

    from claimed_airflow.operators import RowsFilterOperator

    seen = {}
    pod_trigger = SimpleNamespace(name="the pod's trigger")

    def execute(self, ctx):
        seen["deferrable"] = self.deferrable
        raise TaskDeferred(trigger=pod_trigger, method_name="trigger_reentry", kwargs={"k": 1})

    def trigger_reentry(self, ctx, event, k):
        seen["reentry"] = (event, k)
        return {"output": "s3://out/filter/output.csv", "manifest": "s3://out/filter/manifest.json"}

    monkeypatch.setattr(KubernetesPodOperator, "execute", execute)
    monkeypatch.setattr(KubernetesPodOperator, "trigger_reentry", trigger_reentry, raising=False)
    operator = RowsFilterOperator(
        task_id="filter", table="s3://in/t.csv", condition="a > 0", engine="kubernetes", deferrable=True
    )
    ctx = {**context(task_id="filter"), "run_id": "r1", "dag": SimpleNamespace(), "params": {}}
    task_deferred = deferred(operator, ctx)
    assert seen["deferrable"] is True
    assert task_deferred.trigger is pod_trigger and task_deferred.method_name == "execute_complete"
    event = {"status": "success", "name": "pod-1", "namespace": "ml"}
    result = operator.execute_complete(ctx, event=event, **task_deferred.kwargs)
    assert seen["reentry"] == (event, 1)
    assert result["manifest"] == "s3://out/filter/manifest.json"
