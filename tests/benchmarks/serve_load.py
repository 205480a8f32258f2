"""Load test: ``claimed-airflow serve`` under concurrent clients, on loopback, bounded in time.

The model is the one of ``serve.py`` (MobileNetV2 alpha 0.35, 64x64, untrained, Keras). For batch
sizes 1 and 32, ``--clients`` clients (default 32) each keep one connection open and send requests
back to back for ``--seconds`` (default 30), cycling through the three V2 encodings: FP32 JSON, the
binary tensor extension and base64 PNG files (``BYTES``). Reported per encoding and in total:
requests, images/s, latency p50/p99, every status that is not 200, connections dropped by the
server; and the server's resident memory (RSS), sampled every 0.25 s: at the start of each phase,
its peak in the first and in the second half of the run (flat: the second half's peak within 10 %
of the first's). The clients are asyncio streams in one process (little CPU of their own).

Exit status 1 if any answer is a 5xx, a connection was dropped or the RSS grew.

usage: .venv/bin/python tests/benchmarks/serve_load.py [--clients 32] [--seconds 30] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import NAME, SIZE, make_model, percentile, start_server  # noqa: E402 (the benchmarks folder)


def bodies(batch: int) -> dict[str, tuple[bytes, dict]]:
    """(body, headers) of one V2 infer request per encoding, for ``batch`` random images."""
    import numpy as np
    from PIL import Image

    x = np.random.default_rng(batch).uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype(np.float32)
    files = []
    for image in ((x[..., 0] + 1) * 127.5).astype(np.uint8):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        files.append(base64.b64encode(buffer.getvalue()).decode())
    tensor = {"name": "input", "datatype": "FP32", "shape": list(x.shape)}
    header = json.dumps({"inputs": [dict(tensor, parameters={"binary_data_size": x.nbytes})]}).encode()
    json_type = {"Content-Type": "application/json"}
    return {
        "fp32": (json.dumps({"inputs": [dict(tensor, data=x.ravel().tolist())]}).encode(), json_type),
        "binary": (
            header + x.tobytes(),
            {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))},
        ),
        "png": (
            json.dumps({"inputs": [{"name": "input", "datatype": "BYTES", "shape": [batch], "data": files}]}).encode(),
            json_type,
        ),
    }


def request(body: bytes, headers: dict) -> bytes:
    lines = [f"POST /v2/models/{NAME}/infer HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def client(port: int, requests: list[tuple[str, bytes]], until: float, results: dict, offset: int) -> None:
    """Send ``requests`` in turn on one kept-alive connection until ``until``; reconnect if dropped."""
    reader = writer = None
    i = offset
    while time.monotonic() < until:
        way, raw = requests[i % len(requests)]
        i += 1
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = time.perf_counter()
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            results["seconds"][way].append(time.perf_counter() - started)
            results["status"][status] += 1
            if b"connection: close" in head.lower():
                writer.close()
                writer = None
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            results["dropped"].append(f"{way}: {exc.__class__.__name__}")
            writer = None
    if writer is not None:
        writer.close()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def phase(port: int, pid: int, batch: int, clients: int, seconds: float) -> bool:
    """One timed run; prints its report; True when there was no 5xx, no dropped connection and flat RSS."""
    prepared = bodies(batch)
    requests = [(way, request(*prepared[way])) for way in ("fp32", "binary", "png")]
    results = {"seconds": {way: [] for way, _ in requests}, "status": Counter(), "dropped": []}
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.monotonic(), rss_mib(pid)))
            done.wait(0.25)

    async def run() -> None:
        until = time.monotonic() + seconds
        await asyncio.gather(*(client(port, requests, until, results, offset=i) for i in range(clients)))

    sampler = threading.Thread(target=sample)
    start = time.monotonic()
    sampler.start()
    asyncio.run(run())
    done.set()
    sampler.join()
    elapsed = time.monotonic() - start
    load = os.getloadavg()
    all_seconds = [s for values in results["seconds"].values() for s in values]
    print(
        f"batch {batch:2}, {clients} clients, {elapsed:.1f} s, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    for way, values in [*results["seconds"].items(), ("all", all_seconds)]:
        if values:
            print(
                f"  {way:6} {len(values):6} requests  {batch * len(values) / elapsed:8.1f} images/s  "
                f"p50 {percentile(values, 50) * 1e3:8.1f} ms  p99 {percentile(values, 99) * 1e3:8.1f} ms"
            )
    statuses = dict(results["status"])
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    half = start + elapsed / 2
    first = max((rss for t, rss in samples if t < half), default=0.0)
    second = max((rss for t, rss in samples if t >= half), default=0.0)
    flat = second <= first * 1.10
    print(f"  statuses {statuses}; dropped connections {len(results['dropped'])} {results['dropped'][:3]}")
    print(
        f"  server RSS: {samples[0][1]:.0f} MiB at start, peak {first:.0f} MiB in the first half, "
        f"{second:.0f} MiB in the second ({'flat' if flat else 'GREW'})"
    )
    return server_errors == 0 and not results["dropped"] and flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase (batch 1, batch 32)")
    parser.add_argument("--threads", type=int, help="the server's --threads (default: its own)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_model(Path(tmp))
        options = ("--threads", str(args.threads)) if args.threads else ()
        server, port = start_server(folder, options=options)
        try:
            print(f"cpu cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} (shared machine: indicative)")
            ok = all([phase(port, server.pid, batch, args.clients, args.seconds) for batch in (1, 32)])
        finally:
            server.terminate()
            server.wait(timeout=30)
    print("OK: no 5xx, no dropped connection, flat RSS" if ok else "FAILED: see above")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
