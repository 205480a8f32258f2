"""deploy.watson_ml and its hook: the real ibm-watsonx-ai client against a loopback HTTPS stub."""

from __future__ import annotations

import json
import os

import pytest

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run
from tests.tiny_model import make_model_folder, make_onnx_model_folder, png_bytes
from tests.wml_stub import API_KEY, ONNX_SPEC_ID, SPACE_ID, SPEC_ID, USERNAME, WatsonMLStub

pytest.importorskip("ibm_watsonx_ai")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model_folder(tmp_path_factory.mktemp("wml") / "model")


def connection(stub: WatsonMLStub, password: str = API_KEY) -> str:
    conn = {
        "conn_type": "watson_ml",
        "host": stub.url,
        "login": USERNAME,
        "password": password,
        "extra": {"space_id": SPACE_ID, "verify": stub.cert},
    }
    os.environ["AIRFLOW_CONN_WML_STUB"] = json.dumps(conn)
    return "wml_stub"


def test_stores_deploys_and_scores(tmp_path, model, isolated_env):
    sample = tmp_path / "dark.png"
    sample.write_bytes(png_bytes(0))
    with WatsonMLStub(tmp_path) as stub:
        arguments = {"model": str(model), "deployment_name": "xray", "sample": str(sample), "poll_interval": 0.01}
        result = run("deploy.watson_ml", {**arguments, "conn_id": connection(stub)}, root=str(tmp_path))
    deployment = next(iter(stub.deployments))
    assert result["deployment_id"] == deployment
    assert result["deployment_url"] == f"{stub.url}/ml/v4/deployments/{deployment}/predictions"
    assert (result["sample_label"], result["sample_score"]) == ("dark", 0.75)
    calls = stub.calls()
    model_id = result["model_id"]
    for expected in (
        "POST /icp4d-api/v1/authorize",
        f"GET /v2/spaces/{SPACE_ID}",
        "GET /v2/software_specifications",
        "POST /ml/v4/models",
        f"PUT /ml/v4/models/{model_id}/content",
        "POST /ml/v4/deployments",
        f"GET /ml/v4/deployments/{deployment}",
        f"POST /ml/v4/deployments/{deployment}/predictions",
    ):
        assert expected in calls, (expected, calls)
    sent = {f"{r['method']} {r['path']}": r for r in stub.requests}
    assert sent["POST /icp4d-api/v1/authorize"]["body"] == {"username": USERNAME, "api_key": API_KEY}
    stored = sent["POST /ml/v4/models"]["body"]
    assert stored["type"] == "tensorflow_2.14" and stored["software_spec"] == {"id": SPEC_ID}
    assert stored["space_id"] == SPACE_ID and stored["name"] == "xray"
    content = sent[f"PUT /ml/v4/models/{model_id}/content"]["body"]
    assert isinstance(content, bytes) and content[:2] == b"\x1f\x8b"  # the SavedModel tar.gz
    assert sent["POST /ml/v4/deployments"]["body"]["online"] == {}
    assert sent["POST /ml/v4/deployments"]["body"]["asset"] == {"id": model_id}
    values = sent[f"POST /ml/v4/deployments/{deployment}/predictions"]["body"]["input_data"][0]["values"]
    assert len(values) == 1 and len(values[0]) == 16 and values[0][0][0] == [-1.0, -1.0, -1.0]
    authorized = [r for r in stub.requests if r["path"].startswith("/ml/v4/")]
    assert all(r["headers"]["Authorization"].startswith("Bearer ") for r in authorized)
    manifest = open(result["manifest"]).read()
    assert API_KEY not in manifest and API_KEY not in json.dumps(result)


def test_an_onnx_model_is_stored_as_it_is(tmp_path, isolated_env):
    import io
    import tarfile

    onnx_model = make_onnx_model_folder(tmp_path / "onnx-model")
    with WatsonMLStub(tmp_path) as stub:
        arguments = {"model": str(onnx_model), "deployment_name": "xray-torch", "poll_interval": 0.01}
        result = run("deploy.watson_ml", {**arguments, "conn_id": connection(stub)}, root=str(tmp_path))
    sent = {f"{r['method']} {r['path']}": r for r in stub.requests}
    stored = sent["POST /ml/v4/models"]["body"]
    assert stored["type"] == "onnxruntime_1.16" and stored["software_spec"] == {"id": ONNX_SPEC_ID}
    content = sent[f"PUT /ml/v4/models/{result['model_id']}/content"]["body"]
    with tarfile.open(fileobj=io.BytesIO(content)) as archive:
        assert archive.getnames() == ["model.onnx"]
        sent_model = archive.extractfile("model.onnx").read()
    assert sent_model == (onnx_model / "model.onnx").read_bytes()


def test_refused_credentials_are_a_clear_error(tmp_path, model, isolated_env):
    with WatsonMLStub(tmp_path, refuse=True) as stub:
        with pytest.raises(ClaimedError) as error:
            run("deploy.watson_ml", {"model": str(model), "conn_id": connection(stub)}, root=str(tmp_path))
    message = str(error.value)
    assert message.startswith("conn_id: Watson ML refused the credentials"), message
    assert API_KEY not in message and "\n" not in message
    assert not [c for c in stub.calls() if c.startswith("POST /ml/")]


def test_failed_deployment_is_a_clear_error(tmp_path, model, isolated_env):
    with WatsonMLStub(tmp_path, deployment_state="failed") as stub:
        with pytest.raises(ClaimedError) as error:
            run("deploy.watson_ml", {"model": str(model), "conn_id": connection(stub)}, root=str(tmp_path))
    assert str(error.value) == (
        f"deployment_name: Watson ML deployment {next(iter(stub.deployments))} failed: "
        "the runtime could not load the model"
    )


def test_missing_space_and_bad_model_fail_before_any_call(tmp_path, model, isolated_env):
    with pytest.raises(ClaimedError, match="^model: .* needs model.keras or model.onnx, and labels.json"):
        run("deploy.watson_ml", {"model": str(tmp_path), "conn_id": "never_used"}, root=str(tmp_path))
    with WatsonMLStub(tmp_path) as stub:
        connection(stub)
        os.environ["AIRFLOW_CONN_WML_STUB"] = os.environ["AIRFLOW_CONN_WML_STUB"].replace(SPACE_ID, "")
        with pytest.raises(ClaimedError, match="^space_id: no deployment space"):
            run("deploy.watson_ml", {"model": str(model), "conn_id": "wml_stub"}, root=str(tmp_path))
    assert stub.requests == []


def test_hook_is_registered_with_its_connection_type():
    from claimed_airflow import get_provider_info
    from claimed_airflow.hooks.watson_ml import WatsonMachineLearningHook

    info = get_provider_info()
    (conn_type,) = [c for c in info["connection-types"] if c["connection-type"] == "watson_ml"]
    assert conn_type["connection-type"] == WatsonMachineLearningHook.conn_type == "watson_ml"
    module, _, name = conn_type["hook-class-name"].rpartition(".")
    assert name == WatsonMachineLearningHook.__name__ and module in info["hooks"][0]["python-modules"]
    assert conn_type["ui-field-behaviour"]["relabeling"]["password"] == "API key"
    assert {"space_id", "verify"} <= set(conn_type["conn-fields"])
    behaviour = WatsonMachineLearningHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == conn_type["ui-field-behaviour"]["relabeling"]
