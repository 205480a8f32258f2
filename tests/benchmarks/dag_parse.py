"""Benchmark: DAG parse time of dags/dicom_to_deployment.py against an EmptyOperator twin.

The twin has the same task ids, edges and DAG Params (Airflow copies a DAG's Params into every task, so
they cost the same in any DAG), built from plain EmptyOperators. Each file is parsed by a
fresh process through Airflow's DagBag (timed around the DagBag call, after Airflow is imported);
runs alternate between the two files, and the medians and their difference are reported. As in Airflow's
DAG processor, the objects of the imports before the parse are frozen (``gc.freeze()``): otherwise a full
garbage collection of Airflow's heap (about 100 ms here) lands in the parse or not, by chance. Modules
run from byte-code, as installed ones do (the first, untimed parse writes it).

usage: .venv/bin/python tests/benchmarks/dag_parse.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "dicom_to_deployment.py"

PARSE = """
import gc, sys, time
from airflow.dag_processing.dagbag import DagBag
gc.freeze()  # as Airflow's DAG processor does before it parses (dag_processing/manager.py)
start = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
elapsed = time.perf_counter() - start
assert not bag.import_errors, bag.import_errors
assert len(bag.dags) == 1
print(elapsed)
"""


def twin_source(dag_file: Path) -> str:
    """An EmptyOperator DAG with the same dag id, task ids, edges and Params as ``dag_file``."""
    code = (
        "import json, runpy, sys\n"
        "ns = runpy.run_path(sys.argv[1])\n"
        "dag = next(v for v in ns.values() if type(v).__name__ == 'DAG')\n"
        "print(json.dumps({'dag_id': dag.dag_id, 'edges': sorted([t.task_id, d] for t in dag.tasks"
        " for d in t.downstream_task_ids), 'tasks': [t.task_id for t in dag.tasks],"
        " 'params': {k: {'default': p.value, 'description': p.description, 'schema': p.schema}"
        " for k, p in dag.params.items()}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(dag_file)], capture_output=True, text=True, check=True)
    shape = json.loads(out.stdout.strip().splitlines()[-1])  # Airflow may log to stdout first
    lines = [
        "from datetime import datetime",
        "from airflow.providers.standard.operators.empty import EmptyOperator",
        "from airflow.sdk import DAG, Param",
        f"PARAMS = {shape['params']!r}",
        "params = {k: Param(p['default'], description=p['description'], **p['schema']) for k, p in PARAMS.items()}",
        f"with DAG(dag_id={shape['dag_id']!r}, schedule=None, start_date=datetime(2026, 1, 1), params=params) as dag:",
    ]
    lines += [f"    t_{i} = EmptyOperator(task_id={task!r})" for i, task in enumerate(shape["tasks"])]
    index = {task: i for i, task in enumerate(shape["tasks"])}
    lines += [f"    t_{index[a]} >> t_{index[b]}" for a, b in shape["edges"]]
    return "\n".join(lines) + "\n"


def parse_once(dags_folder: Path, env: dict) -> float:
    done = subprocess.run([sys.executable, "-c", PARSE, str(dags_folder)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ours, twin = tmp / "ours", tmp / "twin"
        ours.mkdir()
        twin.mkdir()
        (ours / DAG_FILE.name).symlink_to(DAG_FILE)
        (ours / "sample_data").symlink_to(DAG_FILE.parent / "sample_data")
        (twin / DAG_FILE.name).write_text(twin_source(DAG_FILE))
        env = dict(os.environ, AIRFLOW_HOME=str(tmp / "home"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
        # byte-code as an installed package has it (pip compiles at install): the warm-up writes it to a
        # cache of its own, so a PYTHONDONTWRITEBYTECODE environment does not charge compiling to every parse
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        parse_once(ours, env)  # warm the file cache and byte-code of both
        parse_once(twin, env)
        times: dict[str, list[float]] = {"ours": [], "twin": []}
        for _ in range(args.runs):
            times["ours"].append(parse_once(ours, env))
            times["twin"].append(parse_once(twin, env))
    ours_ms = statistics.median(times["ours"]) * 1000
    twin_ms = statistics.median(times["twin"]) * 1000
    print(f"runs: {args.runs} alternating, fresh process each")
    print(f"dicom_to_deployment.py   median {ours_ms:7.1f} ms")
    print(f"EmptyOperator twin       median {twin_ms:7.1f} ms")
    print(f"difference               {ours_ms - twin_ms:+7.1f} ms (goal: at most +50 ms)")


if __name__ == "__main__":
    main()
