"""Fault injection: SIGKILLed runs, concurrent publishers and an object store that fails writes.

What must hold (docs/guides/security.md, "Reliability"): an artifact is visible only complete, the
manifest is written last and only over complete outputs, a retry gives the same outputs and hashes as
an undisturbed run, working folders of killed runs go away on the next run, concurrent ``deploy.local``
runs get distinct versions. A worker crash in ``dicom_to_images`` sets aside only its file:
``tests/test_dicom_images.py::test_a_crashing_decoder_sets_aside_only_its_file``.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from claimed_airflow.core import storage
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run
from claimed_airflow.core.storage import Scope
from tests.fault_components import slow_writer, two_outputs

REPO = Path(__file__).resolve().parent.parent
WRITER = "tests.fault_components:slow_writer"
pytestmark = pytest.mark.timeout(600)


def _cli(*args: str, tmpdir: Path) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    command = [sys.executable, "-m", "claimed_airflow.cli", "run", *args]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_written(process: subprocess.Popen) -> None:
    for line in process.stdout:
        if line.strip() == "WRITTEN":
            return
    raise AssertionError(f"the component never wrote: {process.stderr.read()}")


def _age(paths) -> None:
    """Make leftovers look an hour old (older than storage.STALE_AFTER, what the next run waits for)."""
    past = time.time() - 3600
    for path in paths:
        os.utime(path, (past, past))


# -- working folders of killed runs (issue 16, item 10) --------------------------------------------


def test_a_sigkilled_runs_working_folder_is_removed_by_the_next_run(tmp_path, monkeypatch):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    killed = _cli(WRITER, "--files=2", "--hold=120", "--output-root", str(tmp_path / "out"), tmpdir=tmp)
    _wait_written(killed)
    (killed_folder,) = tmp.glob("claimed-*")
    alive = _cli(WRITER, "--files=2", "--hold=120", "--output-root", str(tmp_path / "out"), tmpdir=tmp)
    try:
        _wait_written(alive)
        (alive_folder,) = set(tmp.glob("claimed-*")) - {killed_folder}
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
        assert killed_folder.exists()  # SIGKILL: nothing of the run cleans up
        _age([killed_folder, alive_folder])
        monkeypatch.setattr(tempfile, "tempdir", str(tmp))
        run(slow_writer.spec, {"files": 1}, root=str(tmp_path / "out"))
        assert not killed_folder.exists()
        assert alive_folder.exists()  # a running run's folder is locked, whatever its age
    finally:
        for process in (killed, alive):
            process.kill()
            process.wait(30)
    assert not [p for p in tmp.glob("claimed-*") if p != alive_folder]


# -- concurrent deploy.local (item 9) ---------------------------------------------------------------


def test_concurrent_deploy_local_runs_get_distinct_complete_versions(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    for i in range(40):
        (model / f"w{i}.bin").write_bytes(os.urandom(1 << 18))
    registry = tmp_path / "registry"
    runs = [
        _cli(
            "deploy.local",
            f"--model={model}",
            "--model_name=m",
            f"--models_root={registry}",
            "--output-root",
            str(tmp_path / "out"),
            tmpdir=tmp_path,
        )
        for _ in range(4)
    ]
    results = []
    for process in runs:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(r["model_version"] for r in results) == [1, 2, 3, 4]
    assert sorted(os.listdir(registry / "m")) == ["1", "2", "3", "4"]  # no .tmp/.old leftovers
    expected = storage.content_hash(model)
    for result in results:
        assert storage.content_hash(result["model_uri"]) == expected


def test_deploy_local_versions_are_exclusive_even_for_an_empty_model(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    first = storage.commit_version(empty, str(tmp_path / "reg"))
    second = storage.commit_version(empty, str(tmp_path / "reg"))
    assert (first[1], second[1]) == (1, 2)


def test_replacing_a_folder_keeps_a_complete_one_visible(tmp_path, monkeypatch):
    target = tmp_path / "out" / "images"
    versions = []
    for n in (1, 2):
        folder = tmp_path / f"v{n}"
        folder.mkdir()
        for i in range(50):
            (folder / f"{i}.txt").write_text(str(n) * 1000)
        versions.append(folder)
    storage.commit(versions[0], str(target))
    states = []

    def observed(function):
        def step(*args, **kwargs):  # after every rename of the commit: what a reader of the path finds
            result = function(*args, **kwargs)
            states.append(len(os.listdir(target)) if target.is_dir() else "missing")
            return result

        return step

    monkeypatch.setattr(os, "rename", observed(os.rename))
    monkeypatch.setattr(os, "replace", observed(os.replace))
    if hasattr(storage, "_rename2"):  # renameat2 (Linux)
        monkeypatch.setattr(storage, "_rename2", observed(storage._rename2))
    storage.commit(versions[1], str(target))
    assert states and set(states) == {50}
    assert storage.content_hash(target) == storage.content_hash(versions[1])
    assert [p.name for p in target.parent.iterdir()] == ["images"]


# -- SIGKILL during the output commit, then a retry (item 12) ---------------------------------------


def test_kill_mid_write_then_retry_equals_an_undisturbed_run(tmp_path):
    files, size = 200, 1 << 16
    undisturbed = run(slow_writer.spec, {"files": files, "size": size}, root=str(tmp_path / "clean"))
    expected = json.loads(Path(undisturbed["manifest"]).read_text())["outputs"]
    expected_hash = storage.content_hash(undisturbed["output"])
    root, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    scope = ["--dag-id", "d", "--run-id", "r", "--task-id", "t", "--output-root", str(root)]
    task = root / "d" / "r" / "t"
    target, manifest = task / "out", task / "manifest.json"
    partial, stop = [], threading.Event()

    def watch():  # a reader that looks all the time: the output is absent or complete
        while not stop.is_set():
            try:
                folder = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                continue
            try:
                names = os.listdir(folder)
                try:  # still the output when the listing ended? a replaced one is removed after the swap
                    current = os.stat(target).st_ino == os.fstat(folder).st_ino
                except FileNotFoundError:
                    current = False
            finally:
                os.close(folder)
            if len(names) != files and current:
                partial.append(len(names))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for delay in (0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4):
            attempt = _cli(WRITER, f"--files={files}", f"--size={size}", *scope, tmpdir=tmp)
            _wait_written(attempt)
            time.sleep(delay)
            attempt.send_signal(signal.SIGKILL)
            attempt.wait(30)
            if manifest.exists():  # a manifest vouches only for complete outputs
                recorded = json.loads(manifest.read_text())["outputs"]["output"]["hash"]
                assert recorded == storage.content_hash(target) == expected_hash
    finally:
        stop.set()
        watcher.join()
    assert partial == []
    _age([*task.glob(".*"), *tmp.glob("claimed-*")] if task.exists() else tmp.glob("claimed-*"))
    retry = _cli(WRITER, f"--files={files}", f"--size={size}", *scope, tmpdir=tmp)
    out, err = retry.communicate(timeout=300)
    assert retry.returncode == 0, err
    result = json.loads(out[out.index("{") :])
    assert json.loads(Path(result["manifest"]).read_text())["outputs"]["output"]["hash"] == expected["output"]["hash"]
    assert storage.content_hash(target) == expected_hash
    assert sorted(p.name for p in task.iterdir()) == ["manifest.json", "out"]  # no staging copies left
    assert list(tmp.glob("claimed-*")) == []  # nor working folders of the killed attempts


# -- an object store that fails writes (item 12) ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FaultyProxy(ThreadingHTTPServer):
    """Forwards S3 requests to moto; after ``fail_after`` object PUTs under ``prefix``, PUTs get 500."""

    def __init__(self, upstream: int, prefix: str):
        self.upstream, self.prefix = upstream, prefix
        self.fail_after: int | None = None
        self.puts = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _forward(self):
        server: FaultyProxy = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.command == "PUT" and self.path.startswith(server.prefix):
            with server.lock:
                server.puts += 1
                failing = server.fail_after is not None and server.puts > server.fail_after
            if failing:
                error = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                self.send_response(500)
                self.send_header("Content-Length", str(len(error)))
                self.end_headers()
                self.wfile.write(error)
                return
        connection = http.client.HTTPConnection("127.0.0.1", server.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
        connection.request(self.command, self.path, body=body, headers=headers)
        answer = connection.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(key, value)
        self.send_header(
            "Content-Length", answer.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
        )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        connection.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815

    def log_message(self, *args):
        pass


@pytest.fixture
def faulty_s3(monkeypatch):
    s3fs = pytest.importorskip("s3fs")
    port = _free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    proxy = FaultyProxy(port, "/claimed/faults/")
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.server_port}",
        "AWS_MAX_ATTEMPTS": "2",
        "NO_PROXY": "127.0.0.1,localhost",
    }.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    direct = s3fs.S3FileSystem(client_kwargs={"endpoint_url": f"http://127.0.0.1:{port}"}, skip_instance_cache=True)
    direct.mkdir("claimed")
    yield proxy, direct
    proxy.shutdown()
    moto.terminate()
    moto.wait(10)
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.mark.parametrize("fail_after", [2, 5], ids=["inside-the-folder", "second-output"])
def test_an_object_store_failing_writes_leaves_no_half_written_output(faulty_s3, tmp_path, fail_after):
    import s3fs

    proxy, direct = faulty_s3
    data = tmp_path / "data.txt"
    data.write_text("hello\n")
    scope = Scope(dag_id="d", run_id="r", task_id="t")
    proxy.fail_after = fail_after
    with pytest.raises(Exception) as caught:  # noqa: PT011 - checked below, after what is left
        run(two_outputs.spec, {"data": str(data)}, root="s3://claimed/faults", scope=scope)
    assert proxy.puts > fail_after  # writes were really refused
    direct.invalidate_cache()
    assert direct.find("claimed/faults") == []  # no output, no manifest
    assert isinstance(caught.value, ClaimedError)
    assert str(caught.value).startswith("cannot write s3://claimed/faults/d/r/t/")

    proxy.fail_after = None
    s3fs.S3FileSystem.clear_instance_cache()
    result = run(two_outputs.spec, {"data": str(data)}, root="s3://claimed/faults", scope=scope)
    clean = run(two_outputs.spec, {"data": str(data)}, root=str(tmp_path / "clean"))
    recorded = storage.read_json(result["manifest"])["outputs"]
    assert recorded == {
        name: {"uri": result[name], "hash": item["hash"]}
        for name, item in json.loads(Path(clean["manifest"]).read_text())["outputs"].items()
    }
    direct.invalidate_cache()
    assert len(direct.find("claimed/faults/d/r/t/first")) == 5


def test_concurrent_deploy_local_runs_into_object_storage_get_distinct_versions(faulty_s3, tmp_path):
    _, direct = faulty_s3
    direct.pipe({"claimed/model/w.bin": os.urandom(1 << 20), "claimed/model/config.json": b"{}"})
    runs = [
        _cli(
            "deploy.local",
            "--model=s3://claimed/model",
            "--model_name=m",
            "--models_root=s3://claimed/faults/registry",
            "--output-root",
            str(tmp_path / "out"),
            tmpdir=tmp_path,
        )
        for _ in range(4)
    ]
    results = []
    for process in runs:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(r["model_version"] for r in results) == [1, 2, 3, 4]
    direct.invalidate_cache()
    for version in range(1, 5):
        names = sorted(p.rsplit("/", 1)[1] for p in direct.find(f"claimed/faults/registry/m/{version}"))
        assert names == [".claimed-version", "config.json", "w.bin"]
