"""Benchmark: the local model server (``claimed-airflow serve``) against calling the model in-process.

The model is the flagship's network, untrained: MobileNetV2 (Keras 3, ``weights=None``, alpha 0.35,
2 classes) at 64x64, saved as ``train.mobilenet_v2`` saves it. For batch sizes 1 and 32 it measures

- ``direct``: ``ServedModel.predict`` (Keras ``predict_on_batch``) in this process, no HTTP;
- ``http v2 fp32``: ``POST /v2/models/<name>/infer`` with the FP32 tensor as JSON (Open Inference
  Protocol), one persistent connection, one request at a time, server in its own process;
- ``http v2 binary``: the FP32 tensor as raw bytes (V2 binary tensor data extension);
- ``http v2 png``: the same with the images as base64 PNG files (``BYTES``), decoded by the server.

and reports images/s and per-request latency p50/p99. Sequential requests (latency, not a load test);
the four ways are interleaved request by request so that they share the machine's load.

usage: .venv/bin/python tests/benchmarks/serve.py [--requests 200] [--batch-requests 40]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZE, NAME = 64, "bench"


def make_model(folder: Path) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    network = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), alpha=0.35, weights=None, classes=2)
    version = folder / NAME / "1"
    version.mkdir(parents=True)
    network.save(version / "model.keras")
    (version / "labels.json").write_text(json.dumps({"classes": ["a", "b"], "image_size": SIZE}))
    return version


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def report(label: str, batch: int, seconds: list[float]) -> None:
    total = sum(seconds)
    print(
        f"{label:15} batch {batch:2}: {batch * len(seconds) / total:8.1f} images/s  "
        f"p50 {percentile(seconds, 50) * 1e3:7.1f} ms  p99 {percentile(seconds, 99) * 1e3:7.1f} ms  "
        f"({len(seconds)} requests)"
    )


def timed(calls: dict, n: int, warmup: int = 5) -> dict[str, list[float]]:
    """Seconds per call of each named call; the calls are interleaved so that they share the same load."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(n):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests at batch size 1")
    parser.add_argument("--batch-requests", type=int, default=40, help="requests at batch size 32")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    from PIL import Image

    from claimed_airflow.serving import ServedModel

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_model(Path(tmp))
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "claimed-airflow"), "serve", str(folder), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            server.stdout.readline()
            port = int(server.stdout.readline().split("127.0.0.1:", 1)[1].split("/", 1)[0])
            model = ServedModel(folder)
            rng = np.random.default_rng(0)
            connection = http.client.HTTPConnection("127.0.0.1", port)

            def post(body: bytes, headers: dict | None = None) -> dict:
                headers = headers or {"Content-Type": "application/json"}
                connection.request("POST", f"/v2/models/{NAME}/infer", body, headers)
                response = connection.getresponse()
                answer = json.loads(response.read())
                assert response.status == 200, answer
                return answer

            print(f"cpu cores: {os.cpu_count()} (shared with other work; numbers are indicative)")
            for batch, n in ((1, args.requests), (32, args.batch_requests)):
                x = rng.uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype(np.float32)
                pixels = ((x[..., 0] + 1) * 127.5).astype(np.uint8)
                files = []
                for image in pixels:
                    buffer = io.BytesIO()
                    Image.fromarray(image).save(buffer, format="PNG")
                    files.append(base64.b64encode(buffer.getvalue()).decode())
                fp32 = json.dumps(
                    {
                        "inputs": [
                            {"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}
                        ]
                    }
                ).encode()
                png = json.dumps(
                    {"inputs": [{"name": "input", "datatype": "BYTES", "shape": [batch], "data": files}]}
                ).encode()
                header = json.dumps(
                    {
                        "inputs": [
                            {
                                "name": "input",
                                "datatype": "FP32",
                                "shape": list(x.shape),
                                "parameters": {"binary_data_size": x.nbytes},
                            }
                        ]
                    }
                ).encode()
                binary = header + x.tobytes()
                binary_headers = {
                    "Content-Type": "application/octet-stream",
                    "Inference-Header-Content-Length": str(len(header)),
                }
                answer = post(fp32)["outputs"][0]["data"]
                np.testing.assert_allclose(np.reshape(answer, (batch, 2)), model.predict(x), rtol=1e-4, atol=1e-5)
                calls = {
                    "direct": lambda x=x: model.predict(x),
                    "http v2 fp32": lambda body=fp32: post(body),
                    "http v2 binary": lambda b=binary, h=binary_headers: post(b, h),
                    "http v2 png": lambda body=png: post(body),
                }
                for label, seconds in timed(calls, n).items():
                    report(label, batch, seconds)
                sizes = f"fp32 {len(fp32) / 1e6:.2f} MB, binary {len(binary) / 1e6:.2f} MB, png {len(png) / 1e6:.3f} MB"
                print(f"{'':15} request body: {sizes}")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
