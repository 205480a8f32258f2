"""Engine ``spark``: run the component through spark-submit, with the apache.spark provider's SparkSubmitHook.

``spark-submit spark_app/launcher.py <component> --param=value ... --output-root <root> --dag-id ...``: the
launcher runs ``claimed-airflow run <component>``, and the component takes the SparkSession that
spark-submit configured (master from the ``spark_default`` connection, e.g. ``local[*]``). The
result (output URIs and small values) is read back from the run manifest the component writes under
the output root, so it also works with a driver on the cluster (``deploy_mode=cluster``) when the
output root is shared storage. The hook is called directly (no operator inside the task).
"""

from __future__ import annotations

import os
import sys
from typing import Any, ClassVar

from claimed_airflow.core import commandline, storage
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import MANIFEST
from claimed_airflow.operators.engines.protocol import EngineTask

_DONE = "FINISHED"  # a tracked driver's final state when it succeeded (Spark standalone cluster mode)


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


def submission(task: EngineTask) -> dict[str, Any]:
    """The SparkSubmitHook's arguments for this task's component (the application is :func:`application`)."""
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
    return {
        "conf": conf,
        "conn_id": task.spark.conn_id,
        "name": f"claimed-{task.spec.name}-{task.scope.task_id}",
        "application_args": args,
        "env_vars": env or None,
    }


def submit_hook(task: EngineTask, context: Any):
    """The SparkSubmitHook of this task (reads the connection); OpenLineage's Spark properties as the provider's
    operator adds them (``[openlineage] spark_inject_parent_job_info`` / ``spark_inject_transport_info``)."""
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    from claimed_airflow.version_compat import conf as airflow_conf

    arguments = submission(task)
    if airflow_conf.getboolean("openlineage", "spark_inject_parent_job_info", fallback=False):
        from airflow.providers.common.compat.openlineage.utils.spark import (
            inject_parent_job_information_into_spark_properties,
        )

        arguments["conf"] = inject_parent_job_information_into_spark_properties(arguments["conf"], context)
    if airflow_conf.getboolean("openlineage", "spark_inject_transport_info", fallback=False):
        from airflow.providers.common.compat.openlineage.utils.spark import (
            inject_transport_information_into_spark_properties,
        )

        arguments["conf"] = inject_transport_information_into_spark_properties(arguments["conf"], context)
    return SparkSubmitHook(**arguments)


class SparkEngine:
    """The component runs under spark-submit; it never defers (spark-submit holds the worker slot)."""

    name: ClassVar[str] = "spark"
    defers: ClassVar[bool] = False

    def run(self, task: EngineTask, context: Any) -> dict[str, Any]:
        manifest_uri = storage.join(storage.task_uri(task.root, task.scope), MANIFEST)
        if storage.exists(manifest_uri):  # an earlier try's record must not pass for this one's
            storage.filesystem(manifest_uri).rm(manifest_uri)
        hook = task.started = submit_hook(task, context)
        hook.submit(application())
        if getattr(hook, "_should_track_driver_status", False) and getattr(hook, "_driver_status", _DONE) != _DONE:
            # a driver on a standalone cluster: provider 6.3+ leaves following it to its operator
            try:
                hook._start_driver_status_tracking()
            finally:
                hook._run_post_submit_commands()
            if hook._driver_status != _DONE:
                raise ClaimedError(f"{task.spec.name}: the Spark driver ended in state {hook._driver_status}")
        if not storage.exists(manifest_uri):
            raise ClaimedError(f"{task.spec.name}: spark-submit finished but wrote no manifest at {manifest_uri}")
        return result_from_manifest(storage.read_json(manifest_uri), manifest_uri)

    def resume(self, task: EngineTask, context: Any, state: dict[str, Any], event: Any) -> dict[str, Any]:
        raise ClaimedError(f"{task.spec.name}: engine spark never defers, so there is nothing to resume")

    def kill(self, task: EngineTask) -> None:
        """The task is killed: the hook kills spark-submit (and a driver it started on a cluster)."""
        if task.started is not None:
            task.started.on_kill()
