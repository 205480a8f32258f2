"""The scheduler's part for a run another DAG triggered, in tests that run DAGs with ``dag.test()``.

``python -m tests.queued_run <dag_id> <result.json>`` waits for a queued run of ``dag_id`` created after it
started (a TriggerDagRunOperator's, whose task then waits for the run's state), runs the DAG with that run's
conf through ``dag.test()``, gives the queued run the state it ended in, and writes
``{"run_id", "test_run_id", "state", "tasks"}`` to ``result.json``; ``<result.json>.ready`` says it is
waiting. ``dag.test()`` itself never runs a queued run. Airflow logs to stdout: send it to a file, not to
a pipe nobody reads while ``dag.test()`` runs (a full pipe stops the process).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path


def main(dag_id: str, result: str, timeout: float = 300.0) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    since = datetime.now(UTC)
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.get_dag(dag_id)
    Path(f"{result}.ready").touch()
    deadline = time.monotonic() + timeout
    while True:
        with create_session() as session:
            queued = session.scalars(
                select(DagRun).where(
                    DagRun.dag_id == dag_id, DagRun.state == DagRunState.QUEUED, DagRun.queued_at >= since
                )
            ).first()
            if queued is not None:
                run_id, conf = queued.run_id, dict(queued.conf or {})
                break
        if time.monotonic() > deadline:
            raise SystemExit(f"no queued run of {dag_id} within {timeout:.0f} s")
        time.sleep(0.5)
    test_run = dag.test(run_conf=conf)
    state = DagRunState(str(test_run.state))
    with create_session() as session:
        queued = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one()
        queued.set_state(state)
    tasks = {ti.task_id: str(ti.state) for ti in test_run.get_task_instances()}
    record = {"run_id": run_id, "test_run_id": test_run.run_id, "state": str(state), "tasks": tasks}
    Path(result).write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
