"""Engine ``spark``: run the component through the apache.spark SparkSubmitOperator.

``spark-submit spark_app/launcher.py <component> --param=value ... --output-root <root> --dag-id ...``: the
launcher runs ``claimed-airflow run <component>``, and the component takes the SparkSession that
spark-submit configured (master from the ``spark_default`` connection, e.g. ``local[*]``). The
result (output URIs and small values) is read back from the run manifest the component writes under
the output root, so it also works with a driver on the cluster (``deploy_mode=cluster``) when the
output root is shared storage.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from claimed_airflow.core import commandline, storage
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import MANIFEST

if TYPE_CHECKING:
    from claimed_airflow.operators.engines import EngineTask


def application() -> str:
    """The one application file spark-submit runs for every component (:mod:`.spark_app.launcher`)."""
    from claimed_airflow.operators.engines.spark_app import launcher

    return launcher.__file__


def result_from_manifest(record: dict, manifest_uri: str) -> dict[str, Any]:
    """The same result ``runner.run`` returns, rebuilt from a manifest."""
    result = {name: output["uri"] for name, output in record["outputs"].items()}
    result.update(record.get("values") or {})
    result["manifest"] = manifest_uri
    return result


def submit_operator(task: EngineTask, context: Any):
    """The SparkSubmitOperator that runs this task's component (built, not executed)."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    args = [
        task.spec.reference,
        *commandline.parameter_args(task.spec, task.arguments),
        *commandline.scope_args(task.root, task.scope),
    ]
    env = {}
    # The driver (and executors of a local master) run this Python, which has claimed-airflow installed,
    # unless the deployment says otherwise (PYSPARK_PYTHON or spark.pyspark.python).
    # Text timestamps mean UTC, as with engine=local (claimed_airflow.core.spark.LOCAL_CONF).
    conf = {"spark.sql.session.timeZone": "UTC", **(task.spark.conf or {})}
    if "PYSPARK_PYTHON" not in os.environ and "spark.pyspark.python" not in conf:
        env = {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    options: dict[str, Any] = {
        "task_id": task.task_id,
        "application": application(),
        "application_args": args,
        "conn_id": task.spark.conn_id,
        "conf": conf,
        "name": f"claimed-{task.spec.name}-{task.scope.task_id}",
        "env_vars": env or None,
        "allow_nested_operators": True,
    }
    return SparkSubmitOperator(**options)


def kill(task: EngineTask) -> None:
    """The task is killed: SparkSubmitOperator.on_kill kills spark-submit (and a cluster driver it started)."""
    if task.started is not None:
        task.started.on_kill()


def execute(task: EngineTask, context: Any) -> dict[str, Any]:
    submit = task.started = submit_operator(task, context)
    manifest_uri = storage.join(storage.task_uri(task.root, task.scope), MANIFEST)
    if storage.exists(manifest_uri):  # an earlier try's record must not pass for this one's
        storage.filesystem(manifest_uri).rm(manifest_uri)
    submit.execute(context)
    if not storage.exists(manifest_uri):
        raise ClaimedError(f"{task.spec.name}: spark-submit finished but wrote no manifest at {manifest_uri}")
    return result_from_manifest(storage.read_json(manifest_uri), manifest_uri)
