"""``claimed-airflow serve``: real HTTP requests to a served model (Open Inference Protocol V2 and V1)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.serving import ServedModel, resolve_model_folder, serving
from tests.tiny_model import CLASSES, SIZE, make_model_folder, png_bytes


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    make_model_folder(root / "tiny" / "1")
    make_model_folder(root / "tiny" / "2")
    return root


@pytest.fixture(scope="module")
def server(models):
    model = ServedModel(models / "tiny", max_batch=64)
    with serving(model) as url:
        yield url, model


def call(url: str, method: str = "GET", body=None, content_type: str = "application/json", headers=None):
    """(status, parsed JSON body, Content-Type) of one HTTP request."""
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    headers = {"Content-Type": content_type, **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read()), answer.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers["Content-Type"]


def batch(*values: float) -> np.ndarray:
    return np.stack([np.full((SIZE, SIZE, 3), v, dtype=np.float32) for v in values])


def test_resolve_model_folder_picks_the_highest_version(models, tmp_path):
    assert resolve_model_folder(models / "tiny")[1:] == ("tiny", "2")
    assert resolve_model_folder(models / "tiny" / "1")[1:] == ("tiny", "1")
    with pytest.raises(ClaimedError, match="model folder: no model.keras"):
        resolve_model_folder(tmp_path)


def test_health_and_metadata(server):
    url, _ = server
    assert call(f"{url}/v2/health/ready")[:2] == (200, {"ready": True})
    assert call(f"{url}/v2/health/live")[:2] == (200, {"live": True})
    status, meta, content_type = call(f"{url}/v2/models/tiny")
    assert status == 200 and content_type == "application/json"
    assert meta["versions"] == ["2"] and meta["inputs"][0]["shape"] == [-1, SIZE, SIZE, 3]
    assert meta["parameters"]["classes"] == CLASSES
    assert call(f"{url}/v2/models/tiny/versions/2/ready")[:2] == (200, {"name": "tiny", "ready": True})
    assert call(f"{url}/v1/models/tiny")[1]["ready"] is True


def test_v2_infer_batch_matches_the_model_called_directly(server):
    url, model = server
    x = batch(0.9, -0.8, 0.1)
    request = {
        "id": "r1",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}],
    }
    status, answer, _ = call(f"{url}/v2/models/tiny/infer", "POST", request)
    assert status == 200, answer
    assert answer["id"] == "r1" and answer["model_name"] == "tiny" and answer["model_version"] == "2"
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["label"]["data"] == ["bright", "dark", "bright"]
    assert outputs["probabilities"]["shape"] == [3, 2]
    direct = model.network.network.predict(x, verbose=0)
    np.testing.assert_allclose(np.reshape(outputs["probabilities"]["data"], (3, 2)), direct, rtol=1e-5)
    nested = dict(request, outputs=[{"name": "label"}])
    nested["inputs"] = [dict(request["inputs"][0], data=x.tolist())]
    status, answer, _ = call(f"{url}/v2/models/tiny/versions/2/infer", "POST", nested)
    assert status == 200 and [o["name"] for o in answer["outputs"]] == ["label"]


def test_v2_infer_pixels_and_image_files(server):
    url, _ = server
    pixels = np.stack([np.full((SIZE, SIZE), 250), np.full((SIZE, SIZE), 5)]).astype(int)
    request = {
        "inputs": [{"name": "input", "datatype": "UINT8", "shape": [2, SIZE, SIZE], "data": pixels.ravel().tolist()}]
    }
    status, answer, _ = call(f"{url}/v2/models/tiny/infer", "POST", request)
    assert status == 200 and answer["outputs"][1]["data"] == ["bright", "dark"]
    files = [base64.b64encode(png_bytes(v)).decode() for v in (0, 255)]
    request = _v2([2], files, "BYTES")
    status, answer, _ = call(f"{url}/v2/models/tiny/infer", "POST", request)
    assert status == 200 and answer["outputs"][1]["data"] == ["dark", "bright"]
    status, answer, _ = call(f"{url}/v2/models/tiny/infer", "POST", png_bytes(240), "image/png")
    assert status == 200 and answer["outputs"][1]["data"] == ["bright"]


def binary_request(tensor: dict, data: bytes, size: int | None = None) -> tuple[bytes, dict]:
    """(body, headers) of the V2 binary tensor data extension."""
    header = json.dumps(
        {"inputs": [dict(tensor, parameters={"binary_data_size": len(data) if size is None else size})]}
    )
    return header.encode() + data, {"Inference-Header-Content-Length": str(len(header.encode()))}


def test_v2_binary_tensor_extension(server):
    url, model = server
    x = batch(-0.5, 0.7)
    body, headers = binary_request({"name": "input", "datatype": "FP32", "shape": list(x.shape)}, x.tobytes())
    status, answer, _ = call(f"{url}/v2/models/tiny/infer", "POST", body, "application/octet-stream", headers)
    assert status == 200, answer
    outputs = {o["name"]: o["data"] for o in answer["outputs"]}
    assert outputs["label"] == ["dark", "bright"]
    np.testing.assert_allclose(np.reshape(outputs["probabilities"], (2, 2)), model.predict(x), rtol=1e-5)
    files = [png_bytes(255), png_bytes(0)]
    packed = b"".join(len(f).to_bytes(4, "little") + f for f in files)
    body, headers = binary_request({"name": "input", "datatype": "BYTES", "shape": [2]}, packed)
    status, answer, _ = call(f"{url}/v2/models/tiny/infer", "POST", body, "application/octet-stream", headers)
    assert status == 200 and answer["outputs"][1]["data"] == ["bright", "dark"]
    body, headers = binary_request({"name": "input", "datatype": "FP32", "shape": [2, SIZE, SIZE, 3]}, x.tobytes(), 8)
    status, answer, _ = call(f"{url}/v2/models/tiny/infer", "POST", body, "application/octet-stream", headers)
    assert status == 400 and "does not match the 6144 bytes" in answer["error"]
    body, headers = binary_request({"name": "input", "datatype": "FP32", "shape": [1, SIZE, SIZE, 3]}, x.tobytes())
    status, answer, _ = call(f"{url}/v2/models/tiny/infer", "POST", body, "application/octet-stream", headers)
    assert (
        status == 400 and "6144 value(s) do not fill shape" not in answer["error"] and "do not fill" in answer["error"]
    )


def test_v1_predict(server):
    url, _ = server
    instances = [batch(-0.9)[0].tolist(), {"b64": base64.b64encode(png_bytes(255)).decode()}]
    status, answer, _ = call(f"{url}/v1/models/tiny:predict", "POST", {"instances": instances})
    assert status == 200, answer
    assert [p["label"] for p in answer["predictions"]] == ["dark", "bright"]
    assert set(answer["predictions"][0]["probabilities"]) == set(CLASSES)
    status, answer, _ = call(f"{url}/v1/models/tiny:predict", "POST", png_bytes(3), "image/png")
    assert status == 200 and answer["predictions"][0]["label"] == "dark"


def test_dicom_upload(server, shared_data):
    url, _ = server
    data = (shared_data / "dicom" / "pydicom" / "CT_small.dcm").read_bytes()
    status, answer, _ = call(f"{url}/v2/models/tiny/infer", "POST", data, "application/dicom")
    assert status == 200 and answer["outputs"][1]["data"][0] in CLASSES
    status, answer, _ = call(f"{url}/v2/models/tiny/infer", "POST", data[:200], "application/dicom")
    assert status == 400 and answer["error"].startswith("dicom: not a readable DICOM image")


def _v2(shape, data, datatype="FP32", name="input"):
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}]}


J, INFER = "application/json", "/v2/models/tiny/infer"
OK = _v2([1, SIZE, SIZE, 3], [0.0] * 768)
BAD = [
    ("POST", INFER, b"{not json", J, 400, "request: not valid JSON"),
    ("POST", INFER, {"inputs": []}, J, 400, "inputs: expected a list"),
    (
        "POST",
        "/v2/models/tiny/infer",
        _v2([1, 8, 8, 3], [0.0] * 192),
        "application/json",
        400,
        "input.shape: expected [N, 16, 16, 3]",
    ),
    ("POST", INFER, _v2([1, SIZE, SIZE, 3], [0.0] * 5), J, 400, "do not fill shape"),
    (
        "POST",
        "/v2/models/tiny/infer",
        _v2([1, SIZE, SIZE, 3], ["a"] * 768),
        "application/json",
        400,
        "input.data: expected numbers",
    ),
    (
        "POST",
        "/v2/models/tiny/infer",
        _v2([1, SIZE, SIZE, 3], [0] * 768, "FP8"),
        "application/json",
        400,
        "input.datatype: expected one of",
    ),
    (
        "POST",
        "/v2/models/tiny/infer",
        _v2([1, SIZE, SIZE], [300] * 256, "UINT8"),
        "application/json",
        400,
        "within 0..255",
    ),
    (
        "POST",
        "/v2/models/tiny/infer",
        _v2([1, SIZE, SIZE, 3], [0.0] * 768, name="x"),
        "application/json",
        400,
        "inputs[0].name",
    ),
    ("POST", INFER, _v2([1], ["%%%"], "BYTES"), J, 400, "not valid base64"),
    (
        "POST",
        "/v2/models/tiny/infer",
        _v2([1], ["dGV4dA=="], "BYTES"),
        "application/json",
        400,
        "image: not a readable image",
    ),
    (
        "POST",
        "/v2/models/tiny/infer",
        _v2([65, SIZE, SIZE, 3], [0.0] * 65 * 768),
        "application/json",
        413,
        "limit of 64",
    ),
    (
        "POST",
        "/v2/models/tiny/infer",
        dict(OK, outputs=[{"name": "z"}]),
        "application/json",
        400,
        "unknown output",
    ),
    ("POST", INFER, b"abc", "text/plain", 415, "Content-Type"),
    ("POST", INFER, b"not a png", "image/png", 400, "image: not a readable image"),
    (
        "POST",
        "/v1/models/tiny:predict",
        {"instances": [[[1.0]]]},
        "application/json",
        400,
        "instances[0]: expected shape",
    ),
    ("POST", "/v1/models/tiny:predict", {"inputs": []}, J, 400, "'instances'"),
    (
        "POST",
        "/v2/models/other/infer",
        OK,
        "application/json",
        404,
        "model 'other' not found",
    ),
    (
        "POST",
        "/v2/models/tiny/versions/7/infer",
        OK,
        "application/json",
        404,
        "no version '7'",
    ),
    ("GET", INFER, None, J, 405, "use POST"),
    ("POST", INFER, _v2([0, SIZE, SIZE, 3], []), J, 400, "at least one item"),
    (
        "POST",
        INFER,
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, SIZE, SIZE, 3]}]},
        J,
        400,
        "data: missing",
    ),
    ("GET", "/nowhere", None, J, 404, "not found"),
]


@pytest.mark.parametrize(("method", "path", "body", "content_type", "status", "message"), BAD, ids=[b[5] for b in BAD])
def test_bad_requests_get_4xx_with_a_message(server, method, path, body, content_type, status, message):
    url, _ = server
    got, answer, answer_type = call(url + path, method, body, content_type)
    assert (got, answer_type) == (status, "application/json")
    assert message in answer["error"] and "Traceback" not in answer["error"]


def test_serve_command(models, tmp_path):
    command = [str(Path(sys.executable).parent / "claimed-airflow"), "serve", str(models / "tiny" / "1"), "--port", "0"]
    missing = subprocess.run([*command[:2], str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.startswith("claimed-airflow: error: model folder: no model.keras")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = [process.stdout.readline() for _ in range(2)]
        assert lines[0].startswith("serving tiny version 1"), lines
        infer = lines[1].split("V2: ", 1)[1].strip()
        status, answer, _ = call(infer, "POST", png_bytes(0), "image/png")
        assert status == 200 and answer["outputs"][1]["data"] == ["dark"]
    finally:
        process.terminate()
        process.wait(timeout=30)
