"""train.tfjob: the TFJob/PyTorchJob manifest and the exact Kubernetes API calls, against a loopback stub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claimed_airflow import __version__
from claimed_airflow.cli import main
from claimed_airflow.core import registry
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.pod import container_security_context, pod_security_context
from claimed_airflow.core.runner import run
from tests.kube_stub import KubeStub

TRAINER = "tests.trainers:logistic_german"


@pytest.fixture
def stub(tmp_path, monkeypatch):
    server = KubeStub()
    server.connection(tmp_path, monkeypatch)
    yield server
    server.close()


def _args(stub, tmp_path, **more):
    return {
        "trainer": TRAINER,
        "job_root": str(tmp_path / "shared"),
        "fixed": {"data": "s3://b/german.data", "epochs": 5},
        "conn_id": "k8s_stub",
        "job_name": "german-lr",
        "job_namespace": "ml",
        "poll_interval": 0.01,
        "timeout": 10,
        **more,
    }


def _states(*states):
    return [
        (200, {"status": {"conditions": [{"type": s, "status": "True", "message": m} for s, m in [state]]}})
        for state in states
    ]


def test_tfjob_is_submitted_and_waited_for(stub, tmp_path, shared_data):
    base = "/apis/kubeflow.org/v1/namespaces/ml/tfjobs"
    stub.routes[("POST", base)] = [(201, {})]
    stub.routes[("GET", f"{base}/german-lr")] = _states(("Created", ""), ("Running", ""), ("Succeeded", "done"))
    result = run("train.tfjob", _args(stub, tmp_path, workers=3, gpus_per_worker=2), root=str(tmp_path / "out"))
    assert [(r["method"], r["path"]) for r in stub.requests] == [("POST", base)] + [("GET", f"{base}/german-lr")] * 3
    assert {r["authorization"] for r in stub.requests} == {"Bearer stub-token"}  # from the connection
    manifest = stub.requests[0]["body"]
    assert manifest == json.loads(Path(result["job"]).read_text())
    assert (manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"]) == (
        "kubeflow.org/v1",
        "TFJob",
        "german-lr",
    )
    replicas = manifest["spec"]["tfReplicaSpecs"]
    assert {k: v["replicas"] for k, v in replicas.items()} == {"Chief": 1, "Worker": 2}
    container = replicas["Worker"]["template"]["spec"]["containers"][0]
    assert container["name"] == "tensorflow"
    spec = registry.get(TRAINER)
    assert container["resources"] == {  # the kubernetes engine's rule (core.pod): memory and GPUs limited
        "requests": {"cpu": spec.resources.cpu, "memory": spec.resources.memory},
        "limits": {"memory": spec.resources.memory, "nvidia.com/gpu": "2"},
    }
    assert container["image"] == f"{spec.image}:{__version__}-gpu"
    assert container["securityContext"] == container_security_context()
    assert container_security_context()["capabilities"] == {"drop": ["ALL"]}
    assert container_security_context()["seccompProfile"] == {"type": "RuntimeDefault"}
    pod_security = replicas["Worker"]["template"]["spec"]["securityContext"]
    assert pod_security == pod_security_context() and pod_security["runAsNonRoot"] is True
    assert container["command"][:3] == ["claimed-airflow", "run", TRAINER]
    assert result["state"] == "Succeeded" and result["job_name"] == "german-lr"
    assert "sa-token-xyz" not in Path(result["manifest"]).read_text()

    # The chief's command, run here as its pod would run it, writes the model where the result points.
    command = [a.replace("$(CLAIMED_REPLICA)", "german-lr-chief-0") for a in container["command"][1:]]
    command[command.index("--data") + 1] = str(shared_data / "german" / "german.data")
    assert main(command) == 0
    assert Path(result["model"]).is_file() and len(json.loads(Path(result["model"]).read_text())) > 10


def test_pytorchjob_manifest(stub, tmp_path):
    base = "/apis/kubeflow.org/v1/namespaces/ml/pytorchjobs"
    stub.routes[("POST", base)] = [(201, {})]
    stub.routes[("GET", f"{base}/german-lr")] = _states(("Succeeded", ""))
    result = run(
        "train.tfjob",
        _args(stub, tmp_path, kind="PyTorchJob", workers=1, job_node_selector={"gpu": "h100"}, gpus_per_worker=1),
        root=str(tmp_path),
    )
    manifest = json.loads(Path(result["job"]).read_text())
    replicas = manifest["spec"]["pytorchReplicaSpecs"]
    assert list(replicas) == ["Master"]
    pod = replicas["Master"]["template"]["spec"]
    assert pod["containers"][0]["name"] == "pytorch" and pod["nodeSelector"] == {"gpu": "h100"}
    assert result["model"].endswith("/german-lr/german-lr/german-lr-master-0/model.json")


def test_failed_job_timeout_and_refusal_are_clear_errors(stub, tmp_path):
    base = "/apis/kubeflow.org/v1/namespaces/ml/tfjobs"
    stub.routes[("POST", base)] = [(201, {})]
    stub.routes[("GET", f"{base}/german-lr")] = _states(("Running", ""), ("Failed", "chief exited with code 1"))
    with pytest.raises(ClaimedError, match="trainer: TFJob ml/german-lr failed: chief exited with code 1"):
        run("train.tfjob", _args(stub, tmp_path), root=str(tmp_path))
    stub.routes[("GET", f"{base}/german-lr")] = _states(("Running", ""))
    stub.routes[("DELETE", f"{base}/german-lr")] = [(200, {})]
    stub.requests.clear()
    with pytest.raises(
        ClaimedError, match="timeout: tfjobs/german-lr did not finish within 0.05 s; the TFJob was deleted"
    ):
        run("train.tfjob", _args(stub, tmp_path, timeout=0.05), root=str(tmp_path))
    assert stub.requests[-1]["method"] == "DELETE"
    stub.routes[("POST", base)] = [(403, {"kind": "Status", "message": "tfjobs.kubeflow.org is forbidden"})]
    with pytest.raises(
        ClaimedError,
        match=r"cannot create TFJob german-lr in ml: .*refused to create tfjobs.kubeflow.org in ml \(403: tfjobs",
    ):
        run("train.tfjob", _args(stub, tmp_path), root=str(tmp_path))
    with pytest.raises(
        ClaimedError,
        match="^conn_id: Airflow connection 'nowhere' is not defined$",
    ):
        run("train.tfjob", {**_args(stub, tmp_path), "conn_id": "nowhere"}, root=str(tmp_path))
    with pytest.raises(ClaimedError, match="workers: expected at least 1"):
        run("train.tfjob", _args(stub, tmp_path, workers=0), root=str(tmp_path))


def test_existing_job_is_reattached(stub, tmp_path):
    base = "/apis/kubeflow.org/v1/namespaces/ml/tfjobs"
    stub.routes[("POST", base)] = [(409, {"kind": "Status", "message": "already exists"})]
    stub.routes[("GET", f"{base}/german-lr")] = _states(("Succeeded", ""))
    assert run("train.tfjob", _args(stub, tmp_path), root=str(tmp_path))["state"] == "Succeeded"
