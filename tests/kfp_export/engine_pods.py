"""Print, as JSON, the pod the kubernetes engine builds for every task of a DAG (run in the main environment).

``python engine_pods.py DAG_FILE DAG_ID`` -> ``{task_id: {"pod": <V1Pod as the API takes it>, "retries": n}}``.
The pods come from the real KubernetesPodOperator of the cncf.kubernetes provider (``build_pod_request_obj``),
which the kfp environment cannot hold (kfp caps ``kubernetes<31``); test_pod_parity.py compares them with
the exported pipeline.
"""

from __future__ import annotations

import contextlib
import json
import sys
from types import SimpleNamespace


def main(dag_file: str, dag_id: str) -> None:
    import jinja2
    from kubernetes.client import ApiClient

    from claimed_airflow.core import registry
    from claimed_airflow.core.storage import Scope
    from claimed_airflow.kfp.pipeline import load_dag
    from claimed_airflow.operators.base import ClaimedOperator
    from claimed_airflow.operators.engines import kubernetes

    with contextlib.redirect_stdout(sys.stderr):
        dag = load_dag(dag_file, dag_id)
        pods = {}
        defaults = {name: dag.params[name] for name in dag.params}
        for task in dag.tasks:
            if getattr(task, "expand_input", None) is not None:
                task = task.unmap({"shard_index": 0})  # a task per shard: the pod of shard 0
            if not isinstance(task, ClaimedOperator):  # e.g. the reviewer's approval: not a pod
                continue
            if isinstance(task.cache, str):  # "{{ params.cache }}": what Airflow renders before execute
                task.cache = jinja2.Template(task.cache).render(params=defaults)
            scope = Scope(dag_id=dag_id, run_id="parity", task_id=task.task_id)
            ti = SimpleNamespace(dag_id=dag_id, task_id=task.task_id, run_id="parity", map_index=-1, try_number=1)
            context = {"ti": ti, "run_id": "parity", "dag": dag, "params": {}}
            spec = registry.get(task.component)
            operator = kubernetes.pod_operator(task.engine_task(spec, "s3://parity/root", scope), context)
            pod = operator.build_pod_request_obj(context, dry_run=True)
            pods[task.task_id] = {"pod": ApiClient().sanitize_for_serialization(pod), "retries": task.retries}
    json.dump(pods, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:3])
