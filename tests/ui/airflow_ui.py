"""Drive the real Airflow UI: start its API server and DAG processor on 127.0.0.1, open pages in Chromium.

Used by tests/test_ui.py and by ``screenshot.py`` (the README's screenshot).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def preload_env(folder: Path, modules: tuple[str, ...], env: dict[str, str]) -> dict[str, str]:
    """The variables that make the Airflow processes started with ``env`` preload ``modules`` as a deployment does
    (an ``airflow_local_settings.py`` calling :func:`claimed_airflow.preload.preload`, first on PYTHONPATH): the
    scheduler's and Celery workers' task processes are forked with them imported."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "airflow_local_settings.py").write_text(
        f"from claimed_airflow.preload import preload\n\npreload({list(modules)!r})\n"
    )
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(folder), env.get("PYTHONPATH", "")) if p)}


@contextmanager
def airflow_ui(
    env: dict[str, str], log_dir: Path, services: tuple[str, ...] = ("dag-processor",), start_timeout: float = 180
):
    """Run ``airflow api-server`` and ``services`` (e.g. also ``scheduler`` and ``triggerer``, as ``airflow
    standalone`` does); yield the UI's base URL."""
    port = free_port()
    env = dict(env)
    env.update(
        {
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            # tasks the scheduler starts report to this API server, with tokens it can verify
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": env.get("AIRFLOW__API_AUTH__JWT_SECRET") or os.urandom(16).hex(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    airflow = str(Path(sys.executable).parent / "airflow")
    log_dir.mkdir(parents=True, exist_ok=True)
    processes = [
        subprocess.Popen(
            [airflow, name, *args], env=env, stdout=open(log_dir / f"{name}.log", "w"), stderr=subprocess.STDOUT
        )
        for name, args in (("api-server", ["--port", str(port)]), *((service, []) for service in services))
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        else:
            raise RuntimeError(f"the Airflow API server did not start; see {log_dir}")
        yield base
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def open_dag(page, base: str, dag_id: str, timeout: float = 180) -> None:
    """Open the DAG's page, reloading until the DAG processor has parsed it and the UI shows it."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(f"{base}/dags/{dag_id}", wait_until="networkidle")
        if page.get_by_role("button", name="Trigger").count():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"DAG {dag_id} did not appear in the UI")
        time.sleep(3)
