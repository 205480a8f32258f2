"""Runs a component: bind parameters, stage inputs, call the function, commit outputs, write the manifest.

Every engine ends here: the Airflow operator in-process, and ``claimed-airflow run`` in a container.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from claimed_airflow.core import manifest, registry, storage
from claimed_airflow.core.component import ComponentSpec
from claimed_airflow.core.context import RunContext, active
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.storage import Scope

log = logging.getLogger("claimed_airflow")
MANIFEST = "manifest.json"


def run(
    component: str | ComponentSpec,
    arguments: dict[str, Any],
    *,
    root: str | None = None,
    scope: Scope | None = None,
    output_uris: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``component`` and return its result: output URIs, returned values and ``manifest`` URI."""
    spec = registry.get(component) if isinstance(component, str) else component
    values = spec.bind(arguments)
    scope = scope or Scope(dag_id="adhoc", run_id=manifest.now(), task_id=spec.name)
    root = storage.normalize(root or storage.default_root())
    task_dir = storage.task_uri(root, scope)
    output_uris = output_uris or {}
    unknown = sorted(set(output_uris) - {o.name for o in spec.outputs})
    if unknown:
        raise ClaimedError(f"{spec.name}: unknown output(s) {', '.join(unknown)}")
    started = manifest.now()
    with tempfile.TemporaryDirectory(prefix="claimed-") as tmp:
        workdir = Path(tmp)
        call = dict(values)
        input_records = {}
        for param in spec.inputs:
            uri = values[param.name]
            if uri is None:
                continue
            local = storage.stage_input(param.name, uri, workdir)
            call[param.name] = local
            input_records[param.name] = {"uri": storage.normalize(uri), "hash": storage.content_hash(local)}
        outputs = {}
        for param in spec.outputs:
            local = workdir / "outputs" / param.name / str(param.default)
            local.parent.mkdir(parents=True)
            call[param.name] = str(local)
            outputs[param.name] = (local, output_uris.get(param.name) or storage.join(task_dir, param.default))
        ctx = RunContext(component=spec.name, root=root)
        log.info("running %s with %s", spec.name, _printable(values))
        with active(ctx):
            returned = spec.function(**call) or {}
        if not isinstance(returned, dict):
            raise TypeError(f"{spec.name} must return a dict of small values or None")
        output_records = {}
        for name, (local, uri) in outputs.items():
            if not local.exists():
                raise ClaimedError(f"{spec.name}: the component did not write its output {name!r}")
            output_records[name] = {"uri": uri, "hash": storage.content_hash(local)}
            storage.commit(local, uri)
    record = manifest.build(
        spec,
        parameters={p.name: values[p.name] for p in spec.params},
        inputs=input_records,
        outputs=output_records,
        values=returned,
        rejected=ctx.rejected,
        started=started,
        scope=asdict(scope),
    )
    manifest_uri = storage.join(task_dir, MANIFEST)
    storage.write_json(manifest_uri, record)
    if ctx.rejected:
        log.warning("%s: %d item(s) set aside, listed in %s", spec.name, len(ctx.rejected), manifest_uri)
    result = {name: rec["uri"] for name, rec in output_records.items()}
    result.update(returned)
    result["manifest"] = manifest_uri
    return result


def _printable(values: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items())
