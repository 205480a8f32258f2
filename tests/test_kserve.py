"""deploy.kserve against a loopback stand-in of the Kubernetes API (no cluster runs here)."""

from __future__ import annotations

import pytest

from claimed_airflow import __version__
from claimed_airflow.components.deploy.kserve import inference_service, kserve
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.pod import container_security_context
from claimed_airflow.core.runner import run
from tests.kube_stub import InferenceServiceStub

pytest.importorskip("airflow.providers.cncf.kubernetes")

ISVC = "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices"


@pytest.fixture
def connection(tmp_path, monkeypatch):
    """An Airflow Kubernetes connection (cncf.kubernetes provider) whose kubeconfig points at the stub."""

    def use(stub: InferenceServiceStub) -> str:
        return stub.connection(tmp_path, monkeypatch, namespace="models")

    return use


def deploy(tmp_path, conn_id, **params):
    arguments = {"storage_uri": "s3://bucket/models/xray/3", "service_name": "xray", "conn_id": conn_id}
    arguments.update(params)
    return run("deploy.kserve", arguments, root=str(tmp_path))


def test_creates_the_inference_service_and_returns_its_url(tmp_path, connection):
    with InferenceServiceStub() as stub:
        result = deploy(tmp_path, connection(stub), gpus=1, cpu="2", memory="4Gi", poll_interval=0.05)
    assert result["url"] == "http://xray.models.example.com"
    assert (result["action"], result["namespace"]) == ("created", "models")
    assert [(r["method"], r["path"]) for r in stub.requests] == [
        ("GET", f"{ISVC}/xray"),
        ("POST", ISVC),
        ("GET", f"{ISVC}/xray"),
    ]
    sent = stub.requests[1]["body"]
    assert sent["apiVersion"] == "serving.kserve.io/v1beta1" and sent["kind"] == "InferenceService"
    container = sent["spec"]["predictor"]["containers"][0]
    assert container["env"] == [{"name": "STORAGE_URI", "value": "s3://bucket/models/xray/3"}]
    assert container["args"][:3] == ["claimed-airflow", "serve", "/mnt/models"]
    # the kubernetes engine's pods' rule and hardening (core.pod): memory and GPUs limited, non-root, seccomp
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"memory": "4Gi", "nvidia.com/gpu": "1"},
    }
    assert container["image"] == f"ghcr.io/claimed-framework/claimed-airflow:{__version__}-gpu"
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod_security = sent["spec"]["predictor"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["seccompProfile"] == {"type": "RuntimeDefault"}


def test_updates_an_existing_service_with_its_resource_version(tmp_path, connection):
    with InferenceServiceStub() as stub:
        conn_id = connection(stub)
        deploy(tmp_path, conn_id, poll_interval=0.05)
        stub.requests.clear()
        result = deploy(tmp_path / "2", conn_id, storage_uri="s3://bucket/models/xray/4", poll_interval=0.05)
    assert result["action"] == "updated"
    assert [(r["method"], r["path"]) for r in stub.requests][:2] == [("GET", f"{ISVC}/xray"), ("PUT", f"{ISVC}/xray")]
    replaced = stub.requests[1]["body"]
    assert replaced["metadata"]["resourceVersion"] == "1"
    assert replaced["spec"]["predictor"]["containers"][0]["env"][0]["value"] == "s3://bucket/models/xray/4"
    assert stub.objects[("models", "xray")]["metadata"]["resourceVersion"] == "2"


def test_times_out_with_the_last_condition(tmp_path, connection):
    with InferenceServiceStub(ready=False) as stub:
        with pytest.raises(ClaimedError) as error:
            deploy(tmp_path, connection(stub), ready_timeout=1, poll_interval=0.2)
    assert str(error.value) == (
        "ready_timeout: InferenceService models/xray was not Ready after 1 s "
        "(last status: Ready=False: RevisionMissing no revision)"
    )
    assert len([r for r in stub.requests if r["method"] == "GET"]) >= 3


def test_refused_credentials_are_a_clear_error(tmp_path, connection):
    with InferenceServiceStub(refuse=True) as stub:
        with pytest.raises(
            ClaimedError,
            match=r"^conn_id: the Kubernetes API refused to get inferenceservices.serving.kserve.io in models "
            r"\(401: Unauthorized\)",
        ):
            deploy(tmp_path, connection(stub))


def test_kubeconfig_without_a_connection_and_a_serving_runtime(tmp_path, monkeypatch):
    import kubernetes.config.kube_config

    with InferenceServiceStub() as stub:
        monkeypatch.setattr(
            kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", stub.kubeconfig(tmp_path / "kc")
        )
        result = deploy(tmp_path, None, namespace="models", model_format="tensorflow", runtime="kserve-tfserving")
    assert result["url"] == "http://xray.models.example.com"
    model = stub.requests[1]["body"]["spec"]["predictor"]["model"]
    assert model == {
        "modelFormat": {"name": "tensorflow"},
        "storageUri": "s3://bucket/models/xray/3",
        "protocolVersion": "v2",
        "runtime": "kserve-tfserving",
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}},
        "securityContext": container_security_context(),
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"service_name": "X_ray"}, "service_name: 'X_ray' is not a valid Kubernetes name"),
        ({"storage_uri": "/tmp/model"}, "storage_uri: '/tmp/model' is not a location a cluster can read"),
        ({"protocol_version": "v3"}, "protocol_version: expected 'v1' or 'v2'"),
        ({"max_replicas": 0}, "gpus/min_replicas/max_replicas"),
    ],
)
def test_bad_parameters_fail_before_any_call(tmp_path, params, message):
    with pytest.raises(ClaimedError, match="^" + message.replace("(", r"\(").replace("[", r"\[")):
        deploy(tmp_path, "never_used", **params)


def test_manifest_scale_to_zero_and_service_account():
    arguments = {"storage_uri": "gs://b/m", "service_name": "a", "min_replicas": 0, "max_replicas": 3}
    body = inference_service(kserve.spec.bind({**arguments, "service_account": "reader"}), "ns")
    assert body["spec"]["predictor"]["minReplicas"] == 0 and body["spec"]["predictor"]["serviceAccountName"] == "reader"


@pytest.mark.e2e
def test_airflow_task_deploys_and_a_timeout_fails_it_clearly(run_dag, connection, capfd, caplog):
    with InferenceServiceStub() as stub:
        connection(stub)
        state, tasks, _ = run_dag("claimed_test_kserve", {})
        assert (state, tasks) == ("success", {"kserve": "success"})
        assert (
            stub.requests[1]["body"]["spec"]["predictor"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
            == "1"
        )
        stub.ready = False
        state, tasks, _ = run_dag("claimed_test_kserve", {"storage_uri": "s3://bucket/models/xray/2"})
    assert (state, tasks) == ("failed", {"kserve": "failed"})
    assert [r["method"] for r in stub.requests[3:5]] == ["GET", "PUT"]
    printed = capfd.readouterr()
    assert "deploy.kserve: ready_timeout: InferenceService models/xray was not Ready after 1 s" in (
        printed.out + printed.err + caplog.text
    )
