"""``claimed-airflow demo``: run the flagship DAG on Airflow's embedded SQLite database, no cluster."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from claimed_airflow.core.errors import ClaimedError

DAG_ID = "dicom_to_deployment"
# the ready DAGs and their sample data installed with the package (a link to dags/ in the repository)
PACKAGED_DAGS = Path(__file__).resolve().parent / "example_dags"
# `airflow dags test` (2.11 to 3.3) logs each task between these two lines
_TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
_TASK_END = re.compile(r"\[DAG TEST\] end task task_id=(\S+)")
_TASK_FAILED = re.compile(r"new_state=failed|Marking task as FAILED")
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt): (.+)$")


def default_dags_folder() -> Path:
    """``./dags`` when it has the flagship (a checkout), else the DAGs installed with the package."""
    here = Path("dags")
    return here if (here / f"{DAG_ID}.py").exists() else PACKAGED_DAGS


def airflow_env(airflow_home: Path, dags_folder: Path, output_root: Path) -> dict[str, str]:
    """Environment for the Airflow CLI: our home, its own embedded SQLite database, dags folder and output root;
    the venv's bin on PATH. A database or config file the caller's environment names (a deployment's
    ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``, ``AIRFLOW_CONFIG``) is never used: the demo migrates and writes
    only its own."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AIRFLOW__DATABASE__") and name != "AIRFLOW_CONFIG"
    }
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW_CONFIG": str(airflow_home / "airflow.cfg"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CLAIMED__OUTPUT_ROOT": str(output_root),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    return env


def run_demo(dags_folder: str | None, airflow_home: str, output_root: str, conf: dict | None = None) -> dict:
    """Migrate the database, ``airflow dags test`` the flagship DAG, and summarise its outputs."""
    dags = Path(dags_folder).resolve() if dags_folder else default_dags_folder()
    if not (dags / f"{DAG_ID}.py").exists():
        raise ClaimedError(f"--dags-folder: {dags} has no {DAG_ID}.py")
    home, root = Path(airflow_home).resolve(), Path(output_root).resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = airflow_env(home, dags, root)
    log = home / "demo.log"
    airflow = str(Path(sys.executable).parent / "airflow")
    with open(log, "w") as handle:
        print(f"migrating the Airflow database in {home} ...", flush=True)
        migrated = subprocess.run([airflow, "db", "migrate"], env=env, stdout=handle, stderr=subprocess.STDOUT)
        if migrated.returncode != 0:
            raise ClaimedError(f"airflow db migrate failed (exit {migrated.returncode}){_last_error(log)}; log: {log}")
        print(f"running `airflow dags test {DAG_ID}` with {dags / (DAG_ID + '.py')} (log: {log}) ...", flush=True)
        command = [airflow, "dags", "test", DAG_ID, *(["-c", json.dumps(conf)] if conf else [])]
        done = subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
    summary = summarize(root / DAG_ID)
    if done.returncode != 0 or not summary.get("tasks"):
        failed = failed_tasks(log.read_text(errors="replace"))
        for task_id, error in failed.items():
            print(f"task {task_id} failed: {error}", file=sys.stderr)
        where = f"task {', '.join(failed)}" if failed else f"exit {done.returncode}{_last_error(log)}"
        raise ClaimedError(f"the {DAG_ID} run failed ({where}); log: {log}")
    return summary


def failed_tasks(log: str) -> dict[str, str]:
    """``{task_id: its error}`` of the tasks that failed in an ``airflow dags test`` log: the exception line
    after "Task failed with exception" in the task's part of the log (its last try), else its last one."""
    parts: dict[str, list[str]] = {}
    lines: list[str] | None = None
    for line in log.splitlines():
        if start := _TASK_START.search(line):
            lines = parts[start.group(1)] = []  # a retry starts the task's part again
        elif _TASK_END.search(line):
            lines = None
        elif lines is not None:
            lines.append(line)
    failed = {}
    for task_id, lines in parts.items():
        if not any(_TASK_FAILED.search(line) for line in lines):
            continue
        after = next((i for i, line in enumerate(lines) if "Task failed with exception" in line), 0)
        errors = [m.group(1).strip() for m in map(_EXCEPTION.match, lines[after:]) if m]
        errors = errors or [m.group(1).strip() for m in map(_EXCEPTION.match, lines) if m]
        failed[task_id] = errors[0] if errors else "(no error message in the log)"
    return failed


def _last_error(log: Path) -> str:
    """``: <message>`` of the last exception in ``log``, or nothing."""
    errors = [m.group(1) for m in map(_EXCEPTION.match, log.read_text(errors="replace").splitlines()) if m]
    return f": {errors[-1].strip()}" if errors else ""


def summarize(dag_root: Path) -> dict:
    """Outputs and values of the newest run under ``<output root>/<dag_id>``, read from the manifests."""
    runs = sorted((p for p in dag_root.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    if not runs:
        return {}
    tasks = {}
    for manifest in sorted(runs[-1].glob("*/manifest.json"), key=lambda p: p.stat().st_mtime):
        record = json.loads(manifest.read_text())
        tasks[manifest.parent.name] = {
            "component": record["component"],
            "outputs": {name: out["uri"] for name, out in record["outputs"].items()},
            "values": record["values"],
            "rejected": len(record["rejected"]),
        }
    return {"run": str(runs[-1]), "tasks": tasks}


def print_summary(summary: dict) -> None:
    print(f"\nrun folder: {summary['run']}")
    for task, info in summary["tasks"].items():
        values = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in info["values"].items())
        print(f"  {task:18} {info['component']:28} {values}")
        for name, uri in info["outputs"].items():
            print(f"  {'':18}   {name}: {uri}")
    deploy = summary["tasks"].get("deploy")
    if deploy:
        print(f"\ndeployed model: {deploy['values']['model_uri']}")
    else:
        print("\nthe model was not blessed, so it was not deployed")


def sample_image(summary: dict) -> tuple[Path, str] | None:
    """(PNG file, true label) of the first labelled image the run produced, or None."""
    outputs = summary["tasks"].get("dicom_to_images", {}).get("outputs", {})
    images = outputs.get("merged") or outputs.get("images")  # the shards' merge, or one task's folder
    if not images or not (Path(images) / "index.csv").exists():
        return None
    import csv

    with open(Path(images) / "index.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if not str(row.get("label", "")).startswith("_"):
                return Path(images) / row["image"], row["label"]
    return None


def answer_request(model_uri: str, image: Path) -> tuple[str, dict]:
    """Serve the deployed model on a free 127.0.0.1 port, POST one PNG to its V2 ``infer``; (URL, answer)."""
    import urllib.request

    from claimed_airflow.serving import ServedModel, serving

    model = ServedModel(model_uri)
    with serving(model, "127.0.0.1", 0) as base:
        url = f"{base}/v2/models/{model.name}/infer"
        request = urllib.request.Request(url, data=image.read_bytes(), headers={"Content-Type": "image/png"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return url, json.loads(response.read())


def print_inference(summary: dict) -> None:
    """The last step of the demo: the deployed model answers a real HTTP inference request."""
    deploy, sample = summary["tasks"].get("deploy"), sample_image(summary)
    if not deploy or not sample:
        return
    image, label = sample
    url, answer = answer_request(deploy["values"]["model_uri"], image)
    outputs = {o["name"]: o["data"] for o in answer["outputs"]}
    print(f"\nPOST {url}  ({image.name}, true label {label})")
    print(f"  -> {outputs['label'][0]} (score {outputs['score'][0]:.3f})")
    print(f"  answer: {json.dumps(answer)}")


def register(commands) -> None:
    demo = commands.add_parser("demo", help="run the DICOM-to-deployment DAG locally (embedded SQLite)")
    demo.add_argument(
        "--dags-folder",
        default=None,
        help="folder with dicom_to_deployment.py (default: ./dags if it has it, else the DAGs installed with "
        "the package)",
    )
    demo.add_argument("--airflow-home", default=".airflow", help="AIRFLOW_HOME to create/use (default ./.airflow)")
    demo.add_argument("--output-root", default="claimed-artifacts", help="outputs (default ./claimed-artifacts)")
    demo.add_argument("--conf", default=None, help="DAG params as JSON, e.g. '{\"epochs\": 5}'")
    demo.set_defaults(func=main)


def main(args: argparse.Namespace) -> None:
    conf = json.loads(args.conf) if args.conf else None
    summary = run_demo(args.dags_folder, args.airflow_home, args.output_root, conf)
    print_summary(summary)
    print_inference(summary)
