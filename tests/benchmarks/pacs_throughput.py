"""Benchmark: store and retrieve ``--instances`` instances (default 2000) through both real PACS, in one run.

Orthanc (DICOMweb), three ways each, against the same server:

- retrieve: raw parallel WADO-RS GETs of every instance (``--concurrency`` threads, bodies read and
  dropped: what the server can serve at best here), a sequential dicomweb-client loop
  (``retrieve_instance`` + ``save_as``), and input.dicomweb (also reads every file into its table);
- store: raw parallel STOW-RS (one instance a request), a sequential dicomweb-client loop
  (``store_instances`` one at a time), and output.dicomweb (batches of 20).

dcmqrscp (DIMSE, default configuration), against the same archive:

- store: DCMTK's ``storescu`` (all files, one association), a sequential pynetdicom loop (one
  association a file), and output.dicom_network;
- retrieve: DCMTK's ``getscu`` (one C-GET of the whole archive), and input.dicom_network (C-GET).

The files are the shared DICOM files cycled with new UIDs (50 instances a series); reported in
instances/s with ours / raw and ours / sequential ratios.

    .venv/bin/python tests/benchmarks/pacs_throughput.py [--instances 2000] [--concurrency 8] [--pacs both]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "dicom"

from tests import dcmtk, orthanc  # noqa: E402

CONN = "bench_pacs"


def make_files(folder: Path, count: int) -> list[Path]:
    """``count`` files: the shared files cycled, with new UIDs (50 instances a series, 2 series a study)."""
    import pydicom
    from pydicom.uid import generate_uid

    sources = [pydicom.dcmread(p) for p in sorted(SHARED.rglob("*.dcm"))]
    folder.mkdir(parents=True)
    files = []
    for i in range(count):
        ds = sources[i % len(sources)].copy()
        ds.StudyInstanceUID = generate_uid(entropy_srcs=["bench-study", str(i // 100)])
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=["bench-series", str(i // 50)])
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["bench", str(i)])
        files.append(folder / f"{i:05d}.dcm")
        ds.save_as(files[-1], enforce_file_format=True)
    return files


def rate(count: int, seconds: float) -> float:
    return count / seconds


def timed(work) -> tuple:
    started = time.perf_counter()
    count = work()
    return count, time.perf_counter() - started


def session(pacs: orthanc.Orthanc):
    import requests

    s = requests.Session()
    s.auth = (orthanc.USER, pacs.password)
    return s


def orthanc_raw_store(pacs, files: list[Path], concurrency: int) -> int:
    import threading

    local = threading.local()

    def one(path: Path) -> None:
        s = getattr(local, "s", None) or setattr(local, "s", session(pacs)) or local.s
        body = b"--b\r\nContent-Type: application/dicom\r\n\r\n" + path.read_bytes() + b"\r\n--b--\r\n"
        kind = 'multipart/related; type="application/dicom"; boundary=b'
        s.post(f"{pacs.dicomweb_url}/studies", data=body, headers={"Content-Type": kind}).raise_for_status()

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, files))
    return len(files)


def orthanc_loop_store(pacs, files: list[Path]) -> int:
    import pydicom
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(pacs.dicomweb_url, session=session(pacs))
    for path in files:
        client.store_instances([pydicom.dcmread(path)])
    return len(files)


def orthanc_raw_retrieve(pacs, concurrency: int) -> int:
    import threading

    items = session(pacs).get(f"{pacs.dicomweb_url}/instances", params={"limit": 100000}).json()
    urls = [
        f"{pacs.dicomweb_url}/studies/{i['0020000D']['Value'][0]}/series/{i['0020000E']['Value'][0]}"
        f"/instances/{i['00080018']['Value'][0]}"
        for i in items
    ]
    local = threading.local()
    accept = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}

    def one(url: str) -> int:
        s = getattr(local, "s", None) or setattr(local, "s", session(pacs)) or local.s
        answer = s.get(url, headers=accept)
        answer.raise_for_status()
        return len(answer.content)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, urls))
    return len(urls)


def orthanc_loop_retrieve(pacs, out: Path) -> int:
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(pacs.dicomweb_url, session=session(pacs))
    out.mkdir(parents=True)
    found = client.search_for_instances(limit=100000)
    for item in found:
        study, series, sop = (item[tag]["Value"][0] for tag in ("0020000D", "0020000E", "00080018"))
        ds = client.retrieve_instance(study, series, sop, media_types=(("application/dicom", "*"),))
        ds.save_as(out / f"{sop}.dcm", enforce_file_format=False)
    return len(found)


def pynetdicom_loop_store(pacs: dcmtk.Dcmqrscp, files: list[Path]) -> int:
    import pydicom
    from pynetdicom import AE

    for path in files:
        ds = pydicom.dcmread(path)
        if ds.file_meta.TransferSyntaxUID.is_encapsulated:
            ds.decompress(generate_instance_uid=False)  # this archive takes uncompressed data only
        ae = AE(ae_title="CLAIMED")
        ae.add_requested_context(ds.SOPClassUID, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
        assoc = ae.associate("127.0.0.1", pacs.port, ae_title=dcmtk.AE_TITLE)
        status = assoc.send_c_store(ds)
        assert status and status.Status == 0, status
        assoc.release()
    return len(files)


def report(what: str, rates: dict[str, float], ours: str) -> None:
    parts = "   ".join(f"{name} {value:7.1f}/s" for name, value in rates.items())
    ratios = "   ".join(f"{ours}/{name} {rates[ours] / value:.2f}x" for name, value in rates.items() if name != ours)
    print(f"{what}: {parts}\n    {ratios}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pacs", choices=["both", "orthanc", "dcmqrscp"], default="both")
    options = parser.parse_args()
    if not (orthanc.available() and dcmtk.available()):
        sys.exit(f"needs Orthanc and DCMTK ({orthanc.INSTALL}; {dcmtk.INSTALL})")
    import pydicom

    from claimed_airflow.core.runner import run

    n, c = options.instances, options.concurrency
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}  instances: {n}  concurrency: {c}")
    with tempfile.TemporaryDirectory(prefix="claimed-bench-pacs-") as tmp:
        tmp = Path(tmp)
        files = make_files(tmp / "files", n)
        (tmp / "uncompressed").mkdir()
        for path in files:  # for storescu, which does not decompress
            ds = pydicom.dcmread(path)
            if ds.file_meta.TransferSyntaxUID.is_encapsulated:
                ds.decompress(generate_instance_uid=False)
            ds.save_as(tmp / "uncompressed" / path.name, enforce_file_format=True)
        os.environ["DICOMWEB_ALLOW_HTTP"] = "true"  # loopback
        # ---- Orthanc, DICOMweb
        stores, retrieves = {}, {}
        names = ("raw parallel STOW-RS", "sequential client", "output.dicomweb")
        for name in names if options.pacs in ("both", "orthanc") else ():
            with orthanc.Orthanc(tmp / f"orthanc-{len(stores)}") as pacs:
                os.environ[f"AIRFLOW_CONN_{CONN.upper()}"] = pacs.connection()
                if name.startswith("raw"):
                    count, seconds = timed(lambda pacs=pacs: orthanc_raw_store(pacs, files, c))
                elif name.startswith("sequential"):
                    count, seconds = timed(lambda pacs=pacs: orthanc_loop_store(pacs, files))
                else:
                    args = {"dicom": str(tmp / "files"), "conn_id": CONN}
                    count, seconds = timed(
                        lambda a=args: run("output.dicomweb", a, root=str(tmp / "o"))["instances_stored"]
                    )
                assert count == n == pacs.statistics()["CountInstances"], (name, count)
                stores[name] = rate(count, seconds)
                if name == "output.dicomweb":  # the last server holds all: retrieve from it
                    args = {"conn_id": CONN, "level": "instance", "concurrency": c, "max_instances": 10}
                    run("input.dicomweb", args, root=str(tmp / "warm"))  # imports, connections
                    for attempt in range(2):
                        for label, work in (
                            ("raw parallel WADO-RS", lambda p=pacs: orthanc_raw_retrieve(p, c)),
                            ("sequential client", lambda p=pacs, a=attempt: orthanc_loop_retrieve(p, tmp / f"loop{a}")),
                            (
                                "input.dicomweb",
                                lambda a=attempt: run(
                                    "input.dicomweb",
                                    {"conn_id": CONN, "level": "instance", "concurrency": c},
                                    root=str(tmp / f"in{a}"),
                                )["files_read"],
                            ),
                        ):
                            count, seconds = timed(work)
                            assert count == n, (label, count)
                            retrieves[label] = max(retrieves.get(label, 0), rate(count, seconds))
        if stores:
            report("Orthanc store (DICOMweb)", stores, "output.dicomweb")
            report("Orthanc retrieve (DICOMweb, best of 2)", retrieves, "input.dicomweb")
        # ---- dcmqrscp, DIMSE
        stores, retrieves = {}, {}
        names = ("storescu (DCMTK)", "sequential pynetdicom", "output.dicom_network")
        for name in names if options.pacs in ("both", "dcmqrscp") else ():
            with dcmtk.Dcmqrscp(tmp / f"dcmqr-{len(stores)}") as pacs:
                os.environ[f"AIRFLOW_CONN_{CONN.upper()}"] = pacs.dimse_connection()
                if name.startswith("storescu"):  # the files decompressed beforehand: what the archive takes at best
                    command = ["storescu", "-aet", "CLAIMED", "-aec", dcmtk.AE_TITLE, "+sd", "-R"]
                    command += ["127.0.0.1", str(pacs.port), str(tmp / "uncompressed")]
                    count, seconds = timed(lambda cmd=command: subprocess.run(cmd, check=False) and n)
                elif name.startswith("sequential"):
                    count, seconds = timed(lambda pacs=pacs: pynetdicom_loop_store(pacs, files))
                else:
                    args = {"dicom": str(tmp / "files"), "conn_id": CONN}
                    count, seconds = timed(
                        lambda a=args: run("output.dicom_network", a, root=str(tmp / "o"))["instances_stored"]
                    )
                stored = len(pacs.stored())
                print(f"  {name}: {stored} of {n} stored")
                stores[name] = rate(stored, seconds)
                if name == "output.dicom_network":
                    out = tmp / "getscu"
                    out.mkdir()
                    studies = sorted({str(pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID) for f in files})

                    def getscu(out=out, pacs=pacs, studies=studies) -> None:
                        for study in studies:
                            command = ["getscu", "-aet", "CLAIMED", "-aec", dcmtk.AE_TITLE, "-od", str(out), "-S"]
                            command += ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
                            subprocess.run([*command, "127.0.0.1", str(pacs.port)], check=False, capture_output=True)

                    _, seconds = timed(getscu)
                    got = len(list(out.iterdir()))
                    retrieves["getscu (DCMTK)"] = rate(got, seconds) if got else float("nan")
                    print(f"  getscu: {got} of {stored} retrieved")
                    args = {"conn_id": CONN, "level": "study"}
                    result, seconds = timed(lambda a=args: run("input.dicom_network", a, root=str(tmp / "g")))
                    retrieves["input.dicom_network"] = rate(result["files_read"], seconds)
                    print(f"  input.dicom_network: {result['files_read']} of {stored} retrieved")
        if stores:
            report("dcmqrscp store (C-STORE)", stores, "output.dicom_network")
            report("dcmqrscp retrieve (C-GET)", retrieves, "input.dicom_network")
        shutil.rmtree(tmp / "files", ignore_errors=True)
    print(f"load average after: {os.getloadavg()}")
    print(json.dumps({"instances": n}))


if __name__ == "__main__":
    main()
