"""Benchmark: the local model server (``claimed-airflow serve``) against calling the model in-process.

The model is the flagship's network, untrained: MobileNetV2 (Keras 3, ``weights=None``, alpha 0.35,
2 classes) at 64x64, saved as ``train.mobilenet_v2`` saves it. For batch sizes 1 and 32 it measures

- ``direct``: ``ServedModel.predict`` (Keras ``predict_on_batch``) in this process, no HTTP;
- ``http v2 fp32``: ``POST /v2/models/<name>/infer`` with the FP32 tensor as JSON (Open Inference
  Protocol), one persistent connection, one request at a time, server in its own process;
- ``http v2 binary``: the FP32 tensor as raw bytes (V2 binary tensor data extension);
- ``http v2 png``: the same with the images as base64 PNG files (``BYTES``), decoded by the server;
- ``in-process png``: that request answered by ``ServedModel.answer`` in this process (decoding + predict).

and reports images/s and per-request latency p50/p99. Sequential requests (latency, not a load test);
the ways are interleaved request by request so that they share the machine's load. ``--baseline REF``
also serves the model with the ``claimed_airflow`` package of git revision REF (e.g. the server before a
change), interleaved with the others, and prints the ratios the server must meet: binary and PNG at
batch 32 within 1.15x of ``direct`` (p50), FP32 JSON against the baseline's.

usage: .venv/bin/python tests/benchmarks/serve.py [--requests 200] [--batch-requests 40] [--baseline REF]
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
import tarfile
import tempfile
import time
from pathlib import Path

SIZE, NAME = 64, "bench"
ROOT = Path(__file__).resolve().parents[2]
# runs `claimed-airflow serve` of the claimed_airflow package in the folder argv[1] (argv[2:]: its arguments)
_RUN_PACKAGE = """
import sys
sys.path.insert(0, sys.argv[1])
from claimed_airflow.cli import main
sys.exit(main(["serve", *sys.argv[2:]]))
"""


def make_model(folder: Path) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    network = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), alpha=0.35, weights=None, classes=2)
    version = folder / NAME / "1"
    version.mkdir(parents=True)
    network.save(version / "model.keras")
    (version / "labels.json").write_text(json.dumps({"classes": ["a", "b"], "image_size": SIZE}))
    return version


def start_server(folder: Path, baseline: str | None = None, options: tuple[str, ...] = ()):
    """(process, port) of ``claimed-airflow serve folder --port 0``; ``baseline``: the package of that git revision."""
    command = [str(Path(sys.executable).parent / "claimed-airflow"), "serve"]
    if baseline:
        source = folder.parent.parent / f"baseline_{baseline.replace('~', '_').replace('/', '_')}"
        source.mkdir()
        archive = subprocess.run(
            ["git", "archive", "--format=tar", baseline, "claimed_airflow"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(source, filter="data")
        command = [sys.executable, "-c", _RUN_PACKAGE, str(source)]
    server = subprocess.Popen(
        [*command, str(folder), "--port", "0", *options], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    server.stdout.readline()
    port = int(server.stdout.readline().split("127.0.0.1:", 1)[1].split("/", 1)[0])
    return server, port


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
    parser.add_argument("--baseline", help="git revision whose server is measured too (e.g. HEAD~3)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    from PIL import Image

    from claimed_airflow.serving import ServedModel

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_model(Path(tmp))
        servers = {"http": start_server(folder)}
        if args.baseline:
            servers[f"{args.baseline}"] = start_server(folder, args.baseline)
        try:
            model = ServedModel(folder)
            rng = np.random.default_rng(0)
            connections = {name: http.client.HTTPConnection("127.0.0.1", port) for name, (_, port) in servers.items()}

            def post(body: bytes, headers: dict | None = None, server: str = "http") -> dict:
                headers = headers or {"Content-Type": "application/json"}
                connection = connections[server]
                try:
                    connection.request("POST", f"/v2/models/{NAME}/infer", body, headers)
                    response = connection.getresponse()
                except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                    connection.close()  # the server closed a connection left idle longer than its timeout
                    connection.request("POST", f"/v2/models/{NAME}/infer", body, headers)
                    response = connection.getresponse()
                answer = json.loads(response.read())
                assert response.status == 200, answer
                return answer

            print(f"cpu cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} (shared machine: indicative)")
            p50: dict[tuple[str, int], float] = {}
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
                calls = {
                    "direct": lambda x=x: model.predict(x),
                    # the server's own decoding + predict, in this process: what HTTP adds is the rest
                    "in-process png": lambda body=png: model.answer(True, body, "application/json", None),
                }
                for server in servers:
                    answer = post(fp32, server=server)["outputs"][0]["data"]
                    np.testing.assert_allclose(np.reshape(answer, (batch, 2)), model.predict(x), rtol=1e-4, atol=1e-5)
                    calls[f"{server} v2 fp32"] = lambda body=fp32, s=server: post(body, server=s)
                    calls[f"{server} v2 binary"] = lambda b=binary, h=binary_headers, s=server: post(b, h, s)
                    calls[f"{server} v2 png"] = lambda body=png, s=server: post(body, server=s)
                for label, seconds in timed(calls, n).items():
                    report(label, batch, seconds)
                    p50[label, batch] = percentile(seconds, 50)
                sizes = f"fp32 {len(fp32) / 1e6:.2f} MB, binary {len(binary) / 1e6:.2f} MB, png {len(png) / 1e6:.3f} MB"
                print(f"{'':15} request body: {sizes}")
            direct = p50["direct", 32]
            print(f"load average {os.getloadavg()[0]:.2f}; batch 32, p50 against direct (in-process predict):")
            for way in ("binary", "png", "fp32"):
                print(f"  http v2 {way:6}: {p50[f'http v2 {way}', 32] / direct:.2f}x direct")
            print(f"  http v2 png   : {p50['http v2 png', 32] / p50['in-process png', 32]:.2f}x in-process png")
            if args.baseline:
                for way in ("fp32", "binary", "png"):
                    old, new = p50[f"{args.baseline} v2 {way}", 32], p50[f"http v2 {way}", 32]
                    print(
                        f"  {way:6} {args.baseline} {old * 1e3:.1f} ms -> {new * 1e3:.1f} ms: {old / new:.2f}x faster"
                    )
        finally:
            for server, _ in servers.values():
                server.terminate()
                server.wait(timeout=30)


if __name__ == "__main__":
    main()
