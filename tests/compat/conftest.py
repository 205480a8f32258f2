"""The compatibility suite: the same tests on Airflow 2.11, 3.0 and 3.3 (``.ci/run`` runs it in each environment).

Its environments have Airflow, the cncf.kubernetes provider and the core dependencies only (no TensorFlow,
no Spark): what a user adds to an existing deployment. ``tests/conftest.py`` sets AIRFLOW_HOME and the
dags folder; the user DAG of this suite is linked into that folder here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DAGS = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
USER_DAG = DAGS / "user_dag.py"
if not USER_DAG.exists():
    USER_DAG.symlink_to(Path(__file__).parent / "dags" / "user_dag.py")


def _sync(bag) -> None:
    """Write the parsed DAGs (and their assets) to the metadata database, as the DAG processor would."""
    from claimed_airflow.version_compat import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        bag.sync_to_db()
        return
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    DagBundlesManager().sync_bundles_to_db()
    if hasattr(bag, "sync_to_db"):  # 3.0
        bag.sync_to_db("dags-folder", None)
        return
    try:  # 3.2 and later
        from airflow.dag_processing.dagbag import sync_bag_to_db
    except ImportError:  # 3.1
        from airflow.models.dagbag import sync_bag_to_db
    sync_bag_to_db(bag, "dags-folder", None)


@pytest.fixture(scope="session")
def dag_of(airflow_home):
    """``dag_of(file name, dag id)``: the DAG parsed from the dags folder as Airflow does, synced to the database."""
    from claimed_airflow.version_compat import DagBag

    bags = {}

    def get(file_name: str, dag_id: str):
        if file_name not in bags:
            bag = DagBag(dag_folder=str(DAGS / file_name))  # no examples: AIRFLOW__CORE__LOAD_EXAMPLES
            assert not bag.import_errors, bag.import_errors
            _sync(bag)
            bags[file_name] = bag
        return bags[file_name].get_dag(dag_id)

    return get


def run(dag, conf: dict):
    """``dag.test()``: (run state, {task_id: state}, dag run)."""
    dag_run = dag.test(run_conf=conf)
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    return str(getattr(dag_run.state, "value", dag_run.state)), states, dag_run
