"""Benchmark: input.dicomweb against a sequential dicomweb-client loop, on a local Orthanc, and its memory.

Starts Orthanc (Debian's ``orthanc`` + ``orthanc-dicomweb``, see tests/orthanc.py) with ``--instances``
instances (default 2000): the shared DICOM files cycled, each with new Study/Series/SOP Instance UIDs
(50 instances a series). Then, in the same run and against the same server:

1. the plain loop: one QIDO-RS search, then ``retrieve_instance`` (as stored, ``transfer-syntax=*``) and
   ``save_as`` for each instance, one after the other;
2. ``input.dicomweb`` through the runner (``concurrency`` requests in flight, default 8), which also
   reads every file into the metadata table;

each ``--repeat`` times (interleaved, after a warm-up of the component's imports), and reports
instances/s and the ratio of the best runs. Then it runs input.dicomweb in fresh processes on
``--small`` (200) and on all instances and reports each process's peak RSS, and the load average
before and after (the machine may be shared).

    .venv/bin/python tests/benchmarks/dicomweb_retrieve.py [--instances 2000] [--small 200] [--repeat 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "dicom"

from tests import orthanc  # noqa: E402


def load(pacs: orthanc.Orthanc, count: int) -> None:
    """``count`` instances: the shared files cycled, with new UIDs (50 instances a series, 2 series a study)."""
    import pydicom
    from pydicom.uid import generate_uid

    sources = [pydicom.dcmread(p) for p in sorted(SHARED.rglob("*.dcm"))]

    def one(i: int) -> None:
        ds = sources[i % len(sources)].copy()
        series, study = i // 50, i // 100
        ds.StudyInstanceUID = generate_uid(entropy_srcs=["bench-study", str(study)])
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=["bench-series", str(series)])
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["bench-instance", str(i)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=False)
        pacs.request("POST", "/instances", buffer.getvalue())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))


def credentials(pacs: orthanc.Orthanc) -> dict[str, str]:
    """The DICOMWEB_* environment of this server (credentials go only to DICOMWEB_URL; http on loopback)."""
    return {
        "DICOMWEB_URL": pacs.dicomweb_url,
        "DICOMWEB_ALLOW_HTTP": "true",
        "DICOMWEB_USERNAME": orthanc.USER,
        "DICOMWEB_PASSWORD": pacs.password,
    }


def plain_loop(pacs: orthanc.Orthanc, out: Path) -> int:
    import requests
    from dicomweb_client.api import DICOMwebClient

    session = requests.Session()
    session.auth = (orthanc.USER, pacs.password)
    client = DICOMwebClient(pacs.dicomweb_url, session=session)
    out.mkdir(parents=True)
    found = client.search_for_instances(limit=100000)
    for item in found:
        study, series, sop = (item[tag]["Value"][0] for tag in ("0020000D", "0020000E", "00080018"))
        ds = client.retrieve_instance(study, series, sop, media_types=(("application/dicom", "*"),))
        ds.save_as(out / f"{sop}.dcm", enforce_file_format=False)
    return len(found)


def component(pacs: orthanc.Orthanc, root: Path, concurrency: int, limit: int | None = None) -> int:
    from claimed_airflow.core.runner import run

    args = {"conn_id": "", "url": pacs.dicomweb_url, "level": "instance", "concurrency": concurrency}
    if limit:
        args["max_instances"] = limit
    return run("input.dicomweb", args, root=str(root))["files_read"]


MEMORY_CHILD = """
import json, os, resource, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.benchmarks.dicomweb_retrieve import component
from tests import orthanc
pacs = orthanc.Orthanc(Path({folder!r}))
pacs.http_port, pacs.password = {port}, {password!r}
count = component(pacs, Path({out!r}), {concurrency}, {limit})
print(json.dumps({{"count": count, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def peak_memory(pacs: orthanc.Orthanc, folder: Path, limit: int | None, concurrency: int) -> dict:
    code = MEMORY_CHILD.format(
        root=str(ROOT),
        folder=str(folder),
        port=pacs.http_port,
        password=pacs.password,
        out=str(folder / f"mem-{limit}"),
        concurrency=concurrency,
        limit=limit,
    )
    env = {**os.environ, **credentials(pacs)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    options = parser.parse_args()
    if not orthanc.available():
        sys.exit(f"Orthanc is not installed ({orthanc.INSTALL})")
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="claimed-bench-dicomweb-") as tmp, orthanc.Orthanc(Path(tmp)) as pacs:
        folder = Path(tmp)
        started = time.perf_counter()
        load(pacs, options.instances)
        print(f"loaded {options.instances} instances into Orthanc in {time.perf_counter() - started:.1f} s")
        os.environ.update(credentials(pacs))
        component(pacs, folder / "warm-up", options.concurrency, limit=10)  # imports, connections
        plain, ours = [], []
        for attempt in range(options.repeat):
            started = time.perf_counter()
            count = plain_loop(pacs, folder / f"plain-{attempt}")
            plain.append(count / (time.perf_counter() - started))
            started = time.perf_counter()
            read = component(pacs, folder / f"ours-{attempt}", options.concurrency)
            ours.append(read / (time.perf_counter() - started))
            assert read == count == options.instances, (read, count)
            print(f"run {attempt + 1}: plain loop {plain[-1]:7.1f} instances/s   input.dicomweb {ours[-1]:7.1f}")
        print(f"best: plain loop {max(plain):.1f}/s, input.dicomweb {max(ours):.1f}/s: {max(ours) / max(plain):.2f}x")
        small = peak_memory(pacs, folder, options.small, options.concurrency)
        large = peak_memory(pacs, folder, None, options.concurrency)
        print(
            f"peak RSS input.dicomweb: {small['count']} instances {small['peak_mib']:.0f} MiB, "
            f"{large['count']} instances {large['peak_mib']:.0f} MiB ({large['peak_mib'] / small['peak_mib']:.2f}x)"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
