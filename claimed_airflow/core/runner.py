"""Runs a component: bind parameters, stage inputs, call the function, commit outputs, write the manifest.

Every engine ends here: the Airflow operator in-process, and ``claimed-airflow run`` in a container.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from claimed_airflow.core import manifest, registry, sharding, storage
from claimed_airflow.core.component import ComponentSpec
from claimed_airflow.core.context import RunContext, active, cancel, cancelled, current
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.identifying import redact_parameters
from claimed_airflow.core.storage import Scope

log = logging.getLogger("claimed_airflow")
MANIFEST = "manifest.json"
_WORKING: set[str] = set()  # working folders of runs in progress (removed by a killed task's on_kill)
CACHE_FOLDER = ".claimed-cache"


def run(
    component: str | ComponentSpec,
    arguments: dict[str, Any],
    *,
    root: str | None = None,
    scope: Scope | None = None,
    output_uris: dict[str, str] | None = None,
    cache: bool = False,
) -> dict[str, Any]:
    """Run ``component`` and return its result: output URIs, returned values and ``manifest`` URI.

    With ``cache``, a run whose component version, parameters and input content hashes equal those of
    an earlier run (under the same root) whose outputs still verify reuses that run's outputs. A data-parallel
    component given ``shard_tables`` and no ``shard_index`` runs every shard (:func:`run_every_shard`).
    """
    spec = registry.get(component) if isinstance(component, str) else component
    if sharding.spreads(spec, arguments):  # every shard in this task (under spark-submit: over the executors)
        return run_every_shard(spec, arguments, root=root, scope=scope, output_uris=output_uris, cache=cache)
    _mask_uri_secrets([arguments, root, output_uris])
    values = spec.bind(arguments)
    scope = scope or Scope(dag_id="adhoc", run_id=manifest.new_run_id(), task_id=spec.name)
    root = storage.normalize(root or storage.default_root())
    task_dir = storage.task_uri(root, scope)
    output_uris = output_uris or {}
    unknown = sorted(set(output_uris) - {o.name for o in spec.outputs})
    if unknown:
        raise ClaimedError(f"{spec.name}: unknown output(s) {', '.join(unknown)}")
    started = manifest.now()
    parameters = {p.name: values[p.name] for p in spec.params}
    cancel(False)
    with _working_folder() as tmp:
        workdir = Path(tmp)
        call, input_records = _stage_inputs(spec, values, workdir)
        key = cache_key(spec, parameters, input_records)
        hit = _cache_lookup(root, key, workdir) if cache else None
        if hit:
            hit_uri, previous = hit
            log.info("%s: cache hit, reusing the outputs of %s", spec.name, storage.redact(hit_uri))
            output_records, returned, rejected = previous["outputs"], previous["values"], previous["rejected"]
            cache_record = {"key": key, "hit": True, "from": hit_uri}
        else:
            targets = {o.name: output_uris.get(o.name) or storage.join(task_dir, o.default) for o in spec.outputs}
            storage.remove(storage.join(task_dir, MANIFEST))  # a retry: the old record stops vouching first
            output_records, returned, rejected = _execute(spec, call, targets, workdir, root, values, task_dir, scope)
            cache_record = {"key": key, "hit": False}
    record = manifest.build(
        spec,
        parameters=redact_parameters(parameters),
        inputs=input_records,
        outputs=output_records,
        values=returned,
        rejected=rejected,
        started=started,
        scope=asdict(scope),
    )
    record["cache"] = cache_record
    manifest_uri = storage.join(task_dir, MANIFEST)
    storage.write_json(manifest_uri, record)
    if cache and not hit:
        storage.write_json(_cache_entry(root, key), {"manifest": manifest_uri})
    if rejected:
        log.warning("%s: %d item(s) set aside, listed in %s", spec.name, len(rejected), storage.redact(manifest_uri))
    result = {name: rec["uri"] for name, rec in output_records.items()}
    result.update(returned)
    result["manifest"] = manifest_uri
    return result


def run_step(step: str, component: str | ComponentSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run ``component`` as step ``step`` of the component run in progress, in this process: :func:`run`'s result,
    with the step's outputs and manifest in its own folder ``<task folder>/<step>``.

    A component chains others this way (one step's outputs wired to the next one's inputs), each recorded as if
    it were a task, without a task (and a process start) per step.
    """
    ctx = current()
    if ctx.scope is None or ctx.scope.step:
        raise ClaimedError(f"{step}: run_step runs a step of a component run (steps do not nest)")
    if cancelled():
        raise ClaimedError(f"{step}: not started, the task is being killed")
    return run(component, arguments, root=ctx.root, scope=replace(ctx.scope, step=step))


def run_every_shard(component, arguments: dict, *, root=None, scope=None, output_uris=None, cache=False) -> dict:
    """Run a data-parallel component once per shard, then merge the shards' outputs into its own outputs.

    :func:`run`'s signature and result. The shards run under spark-submit (engine ``spark``) as one Spark
    task each, spread over the executors (``core.spark.spread``), else one after another in this process;
    shard ``i`` writes under ``<task>_shard_<i>`` as a mapped task would. Then one run of the component's
    spec with a merging function stands for the task: its outputs are the merged ones (``sharding.merge``), its
    manifest lists every shard's items set aside and its values are the shards' combined (``sharding.combine``).
    """
    import functools
    import tempfile

    from claimed_airflow.core import spark

    spec = registry.get(component) if isinstance(component, str) else component
    root = storage.normalize(root or storage.default_root())
    scope = scope or Scope(dag_id="adhoc", run_id=manifest.new_run_id(), task_id=spec.name)
    with tempfile.TemporaryDirectory(prefix="claimed-shards-") as tmp:
        shards = sharding.count(storage.stage_input("shard_tables", arguments["shard_tables"], Path(tmp)))
    task = scope.task_id if scope.map_index < 0 else f"{scope.task_id}_{scope.map_index}"
    jobs = [
        (
            spec.reference,
            {**arguments, "shard_index": i},
            root,
            Scope(scope.dag_id, scope.run_id, f"{task}_shard", i),
            cache,
        )
        for i in range(shards)
    ]
    log.info("%s: %d shard(s)%s", spec.name, shards, " over the Spark executors" if spark.under_spark_submit() else "")
    done = spark.spread(run_shard, jobs) if spark.under_spark_submit() else [run_shard(job) for job in jobs]
    for index, shard in enumerate(done):
        if "error" in shard:
            raise ClaimedError(f"shard {index} of {shards}: {shard['error']}")
    outputs = [o.name for o in spec.outputs]

    @functools.wraps(spec.function)
    def merged(**call) -> dict:
        counted, distinct = [], {}
        with tempfile.TemporaryDirectory(prefix="claimed-merge-") as tmp:
            for name in outputs:
                parts = [
                    Path(storage.stage_input(f"{name}[{i}]", shard["result"][name], Path(tmp) / str(i)))
                    for i, shard in enumerate(done)
                ]
                result = sharding.merge(parts, Path(call[name]))
                distinct.update(result.get("distinct") or {})  # a report's counts of distinct values
                if "tables" in result:  # a folder: its tables' rows, else its files
                    counted.append(result["table_rows"] if result["tables"] else result["files"])
                elif "rows" in result:  # a table
                    counted.append(result["rows"])
        if counted and not any(counted):
            raise ClaimedError(f"{spec.name}: nothing in any of the {shards} shard(s) (empty, or every file set aside)")
        values: dict = {}
        for shard in done:
            current().rejected.extend(shard["rejected"])
            sharding.combine(values, {k: v for k, v in shard["result"].items() if k not in outputs and k != "manifest"})
        return {**values, **distinct, "shards": shards}

    whole = replace(spec, function=merged, data_parallel=False)  # the merge: no shards again
    arguments = {k: v for k, v in arguments.items() if k != "shard_index"}
    return run(whole, arguments, root=root, scope=scope, output_uris=output_uris, cache=cache)


def run_shard(job: tuple) -> dict:
    """One shard's run (in a Spark executor or this process): its result and items set aside, or its error."""
    component, arguments, root, scope, cache = job
    try:
        result = run(component, arguments, root=root, scope=scope, cache=cache)
    except ClaimedError as exc:  # the user's error, one line; anything else fails the Spark task (retried there)
        return {"error": str(exc)}
    return {"result": result, "rejected": storage.read_json(result["manifest"]).get("rejected") or []}


def working_folders() -> list[str]:
    """The working folders (staged inputs, outputs not yet committed) of the runs in progress in this process."""
    return sorted(_WORKING)


@contextmanager
def _working_folder() -> Iterator[str]:
    folder = ""
    try:
        with storage.work_dir() as folder:
            _WORKING.add(folder)
            yield folder
    finally:
        _WORKING.discard(folder)  # only once removed: on_kill waits for a folder still being removed


def _stage_inputs(spec: ComponentSpec, values: dict, workdir: Path) -> tuple[dict, dict]:
    """Local paths for the input artifacts (the call's arguments) and their URI + content-hash records.

    A shard's run (:func:`shard_of`) stages and hashes its own shard table and, of its ``files`` input, only the
    files that table names; its records say so (``shard``, ``files``)."""
    call, records = dict(values), {}
    shard = shard_of(spec, values, workdir)
    for param in spec.inputs:
        uri = values[param.name]
        if uri is None:
            continue
        call[param.name], records[param.name] = stage(param.name, uri, workdir, shard)
    return call, records


def shard_of(spec: ComponentSpec, values: dict, workdir: Path) -> tuple[int, list[str], str] | None:
    """A shard's run: its index, the names of its files and its staged shard table's folder (only its own
    table staged, read once); else None."""
    index = sharding.index_of(spec, values)
    if index is None:
        return None
    uri, table = values["shard_tables"], sharding.table_name(index)
    tables = storage.stage_files("shard_tables", uri, [table], workdir)
    if not (Path(tables) / table).is_file() and not storage.is_local(uri):
        raise ClaimedError(f"shard_index: no shard {index} in shard_tables {storage.redact(uri)}")
    return index, sharding.files_of(tables, index), tables


def stage(name: str, uri: str, workdir: Path, shard: tuple[int, list[str], str] | None = None) -> tuple[str, dict]:
    """One input staged (:func:`storage.stage_input`; a shard's ``shard_tables`` and ``files``: only its own) and
    its record: URI and content hash (of what was staged, and what that was)."""
    if shard is not None and name in ("shard_tables", sharding.FILES):
        index, files, tables = shard
        names = [sharding.table_name(index)] if name == "shard_tables" else files
        local = tables if name == "shard_tables" else storage.stage_files(name, uri, names, workdir)
        record = {"uri": storage.normalize(uri), "hash": storage.content_hash(local, names)}
        return local, {**record, "shard": index, "files": len(names)}
    local = storage.stage_input(name, uri, workdir)
    return local, {"uri": storage.normalize(uri), "hash": storage.content_hash(local)}


def _execute(
    spec, call: dict, targets: dict[str, str], workdir: Path, root: str, values: dict, task_dir: str = "", scope=None
):
    """Call the component with local output paths, then commit each output to its target URI."""
    locals_ = {}
    for param in spec.outputs:
        local = workdir / "outputs" / param.name / str(param.default)
        local.parent.mkdir(parents=True)
        call[param.name] = str(local)
        locals_[param.name] = local
    ctx = RunContext(component=spec.name, root=root, task_uri=task_dir, scope=scope, spec=spec)
    log.info("running %s with %s", spec.name, _printable(values))
    with active(ctx):
        returned = spec.function(**call) or {}
    if not isinstance(returned, dict):
        raise TypeError(f"{spec.name} must return a dict of small values or None")
    records = {}
    for name, local in locals_.items():
        if not local.exists():
            raise ClaimedError(f"{spec.name}: the component did not write its output {name!r}")
        records[name] = {"uri": targets[name], "hash": storage.content_hash(local)}
    committed = []
    try:
        for name, local in locals_.items():
            storage.commit(local, targets[name], move=True)  # the working folder goes after the run
            committed.append(targets[name])
    except BaseException:
        for uri in committed:  # all outputs or none: no manifest is written after a failed commit
            storage.remove(uri)
        raise
    return records, returned, ctx.rejected


def cache_key(spec: ComponentSpec, parameters: dict, inputs: dict[str, dict]) -> str:
    """Identity of a computation: component, its version, parameters and input contents (not URIs)."""
    identity = {
        "component": spec.name,
        "version": manifest.__version__,
        "parameters": parameters,
        "inputs": {name: record["hash"] for name, record in sorted(inputs.items())},
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _cache_entry(root: str, key: str) -> str:
    return storage.join(root, CACHE_FOLDER, f"{key}.json")


def _cache_lookup(root: str, key: str, workdir: Path) -> tuple[str, dict] | None:
    """The earlier manifest for ``key`` if every output it lists still exists with the recorded hash."""
    entry = _cache_entry(root, key)
    if not storage.exists(entry):
        return None
    manifest_uri = storage.read_json(entry)["manifest"]
    if not storage.exists(manifest_uri):
        return None
    previous = storage.read_json(manifest_uri)
    for name, record in previous["outputs"].items():
        if storage.redact(record["uri"]) != record["uri"] or storage.REDACTED in record["uri"]:
            return None  # the manifest keeps no credentials, so it cannot give back a URI that needs them
        if not storage.exists(record["uri"]):
            log.warning("cache: output %s of %s is gone; recomputing", name, manifest_uri)
            return None
        local = storage.stage_input(name, record["uri"], workdir / "cache")
        if storage.content_hash(local) != record["hash"]:
            log.warning("cache: output %s of %s does not match its recorded hash; recomputing", name, manifest_uri)
            return None
    return manifest_uri, previous


def _printable(values: dict) -> str:
    return storage.redact(", ".join(f"{k}={v!r}" for k, v in redact_parameters(values).items()))


def _mask_uri_secrets(values: Any) -> None:
    """Under Airflow, register the credentials inside URIs with its secrets masker (task log, rendered fields).

    Logs and manifests get :func:`storage.redact` anyway; this covers what we do not format ourselves,
    e.g. a library's traceback that quotes the URL. Airflow is never imported here if it is not loaded.
    """
    secrets = {s for text in _strings(values) for s in storage.uri_secrets(text) if len(s) >= 5}
    if not secrets or "airflow" not in sys.modules:
        return
    try:
        from claimed_airflow.version_compat import mask_secret
    except ImportError:  # no log masker in this Airflow
        return
    for secret in secrets:
        mask_secret(secret)


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)
