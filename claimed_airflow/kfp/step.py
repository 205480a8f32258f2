"""What a KFP step runs: the component through the shared runner (imports neither kfp nor Airflow).

The generated component function of every claimed KFP component is two lines that call
:func:`run_step` with its arguments, so a step behaves exactly like ``claimed-airflow run`` and like
the Airflow operator: same parameter binding, output layout, atomic writes and manifest.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from claimed_airflow.core.component import ComponentSpec

# Inputs every claimed KFP component has besides the component's own parameters: where outputs go,
# as <output_root>/<dag_id>/<run_id>/<task_id>/<output> (the layout of the Airflow operators).
SCOPE_INPUTS = {
    "claimed_output_root": "Root URI of outputs (s3://... on a cluster); empty: $CLAIMED_OUTPUT_ROOT "
    "or ./claimed-artifacts.",
    "claimed_dag_id": "Scope: pipeline (DAG) id of the output folder.",
    "claimed_run_id": "Scope: run id of the output folder (the pipeline passes the KFP run id); empty: now.",
    "claimed_task_id": "Scope: task id of the output folder; empty: the component name.",
}
# Whether the step reuses the outputs of an earlier run with the same inputs (the runner's content-hash
# cache under the output root; KFP's own caching stays off, as a cached KFP step would not run at all).
CACHE_INPUT = "claimed_cache"
MANIFEST = "manifest"
VALUES = "values"
BLESSED = "blessed"
MAPPED = "[shard_index]"  # ends claimed_task_id of a step inside dsl.ParallelFor: outputs under <task_id>_<shard>


def output_names(spec: ComponentSpec) -> list[str]:
    """The KFP outputs, in order: one URI per output artifact, the manifest URI, the returned values
    (a JSON object), and for gates the ``blessed`` boolean."""
    return [p.name for p in spec.outputs] + [MANIFEST, VALUES] + ([BLESSED] if spec.gate else [])


def run_step(component: str, arguments: dict[str, Any]) -> tuple:
    """Run ``component`` with the step's ``arguments``; return the values of :func:`output_names`."""
    from claimed_airflow.core import registry
    from claimed_airflow.core.errors import ClaimedError
    from claimed_airflow.core.manifest import now
    from claimed_airflow.core.runner import run
    from claimed_airflow.core.storage import Scope
    from claimed_airflow.kfp import ui

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    spec = registry.get(component)
    arguments = dict(arguments)
    typed = {name: arguments.pop(name) for name in ui.ARTIFACT_TYPES if name in arguments}
    cache = bool(arguments.pop(CACHE_INPUT, False))
    root = arguments.pop("claimed_output_root", None) or None
    task_id = arguments.pop("claimed_task_id", None) or spec.name
    map_index = -1
    if task_id.endswith(MAPPED):  # one shard of a mapped step: the layout of Airflow's mapped task instances
        task_id, map_index = task_id.removesuffix(MAPPED), int(arguments.get("shard_index") or 0)
    scope = Scope(
        dag_id=arguments.pop("claimed_dag_id", None) or "kfp",
        run_id=arguments.pop("claimed_run_id", None) or now(),
        task_id=task_id,
        map_index=map_index,
    )
    # Unset optional inputs arrive as None: the component's own default applies, as in Airflow.
    values = {name: value for name, value in arguments.items() if value is not None}
    try:
        result = run(spec, values, root=root, scope=scope, cache=cache)
    except ClaimedError as exc:
        raise SystemExit(f"{spec.name}: {exc}") from None
    artifacts = {p.name for p in spec.outputs}
    returned = {k: v for k, v in result.items() if k not in artifacts and k != MANIFEST}
    returned = json.loads(json.dumps(returned, default=str))
    ui.fill(spec, typed, result, returned)
    outputs: list[Any] = [result[p.name] for p in spec.outputs] + [result[MANIFEST], returned]
    if spec.gate:
        outputs.append(bool(returned.get(BLESSED, True)))
    return tuple(outputs)
