"""A plan of claimed steps (from a DAG) -> a KFP v2 pipeline, compiled to IR YAML (kfp imported lazily).

Mapping (Airflow -> KFP):

- each claimed task -> a task of the task's claimed KFP component (named after the task), with the
  same parameter values; ``{{ params.x }}`` -> the pipeline parameter ``x`` (DAG Params become
  typed pipeline parameters with the same defaults); text with params -> a KFP string concatenation;
- ``upstream.output["images"]`` -> ``upstream_task.outputs["images"]`` (the URI); ``a >> b`` ->
  ``b.after(a)``;
- a data-parallel task expanded over an input's shards (``.expand(shard_index=shard_indexes(input))``)
  -> a step listing the input's shards (each item: ``shard_index`` and the upstream outputs the task takes)
  and ``with dsl.ParallelFor(...)`` around the task (one pod per shard, outputs under ``<task_id>_<shard>``
  as in Airflow); a merge of the shards' outputs -> ``dsl.Collected``;
- the blessing gate -> ``with dsl.If(gate.outputs["blessed"] == True)`` around every task after it
  (in Airflow they are skipped when not blessed);
- the task's pod (:class:`claimed_airflow.core.pod.TaskPod`, the one the kubernetes engine runs):
  image (``:<version>``, ``-gpu``, the task's ``image``, the configured images), cpu/memory requests,
  memory limit, ``nvidia.com/gpu``, environment, secrets, tolerations, node selector, image pull
  secrets, security context, ``execution_timeout`` (kfp-kubernetes platform config);
  ``retries``/``retry_delay``/``retry_exponential_backoff``/``max_retry_delay`` -> ``set_retry``;
- ``cache`` -> the step's ``claimed_cache`` input (our content-hash cache inside the step); KFP's own
  caching is off (an Airflow task always runs);
- outputs go to ``<output_root>/<dag_id>/<KFP run id>/<task_id>/<output>`` (``output_root`` is a
  pipeline parameter; the run id is ``dsl.PIPELINE_JOB_ID_PLACEHOLDER``).
"""

from __future__ import annotations

import contextlib
import inspect
import re
import sys
from pathlib import Path
from typing import Any

from claimed_airflow.core.pod import GPU_RESOURCE
from claimed_airflow.kfp.components import default_pod, load_component
from claimed_airflow.kfp.plan import (
    OUTPUT_ROOT,
    Collected,
    Concat,
    Const,
    ExportError,
    OutputRef,
    ParamRef,
    Plan,
    Step,
    plan_dag,
)
from claimed_airflow.kfp.step import BLESSED, CACHE_INPUT, MAPPED, VALUES

_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}


def pipeline_name(dag_id: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", dag_id.lower()).strip("-") or "pipeline"


def build_pipeline(plan: Plan, *, output_root: str = "", install_kfp_package: bool = False) -> Any:
    """The KFP pipeline (a ``GraphComponent``) of ``plan``; ``output_root`` is the parameter's default."""
    from kfp import dsl

    components = {
        s.task_id: load_component(s.spec, name=s.task_id, install_kfp_package=install_kfp_package, pod=s.pod)
        for s in plan.steps
    }
    inputs = [
        inspect.Parameter(
            p.name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=_TYPES[p.type],
            default=inspect.Parameter.empty if p.required else p.default,
        )
        for p in plan.params
    ]
    inputs.append(_input(OUTPUT_ROOT, str, default=output_root))
    docs = {p.name: p.description or p.name for p in plan.params}
    docs[OUTPUT_ROOT] = "Root URI of the outputs (s3://... on a cluster; empty: $CLAIMED_OUTPUT_ROOT)."
    builder = _Builder(plan, components, dsl, install_kfp_package)
    return builder.graph(pipeline_name(plan.dag_id), plan.description or plan.dag_id, inputs, (), docs)


def _input(name: str, annotation: type, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation, default=default)


def _ref_input(task_id: str, key: str) -> str:
    """Input name of a sub-pipeline for the output ``key`` of an outer task."""
    return re.sub(r"\W", "_", f"{task_id}__{key}")


class _Builder:
    """Emits the tasks of a plan; the steps after a blessing gate go into a sub-pipeline.

    The sub-pipeline receives the gate's ``blessed`` output (and every outer value its steps use) as
    inputs and runs its steps under ``dsl.If(blessed == True)``. A condition on an input of the
    enclosing DAG is what both the KFP backend and ``kfp.local`` evaluate (kfp.local 2.17 cannot
    resolve a condition on a task output named other than ``Output`` in the same DAG).
    """

    def __init__(self, plan: Plan, components: dict[str, Any], dsl: Any, install_kfp_package: bool = False) -> None:
        self.plan, self.components, self.dsl = plan, components, dsl
        self.install_kfp_package = install_kfp_package
        self.subs: dict[tuple[str, ...], tuple[Any, dict[str, Any]]] = {}
        levels = {s.gates[:n] for s in plan.steps for n in range(1, len(s.gates) + 1)}
        # kfp builds a pipeline when it is defined and does not nest definitions: innermost first.
        for level in sorted(levels, key=len, reverse=True):
            self.subs[level] = self.sub_pipeline(level)

    def graph(self, name: str, description: str, inputs: list, level: tuple[str, ...], docs: dict) -> Any:
        dsl = self.dsl
        names = [p.name for p in inputs]

        def body(*channels):
            values = dict(zip(names, channels, strict=True))
            if level:
                gate = level[-1]
                with dsl.If(values[_ref_input(gate, BLESSED)] == True, name=f"{gate} blessed"):  # noqa: E712
                    self.emit(level, values)
            else:
                self.emit(level, values)

        # kfp reads a pipeline's inputs from the function's signature and their descriptions from its docstring.
        body.__signature__ = inspect.Signature(inputs)
        body.__name__ = body.__qualname__ = name.replace("-", "_")
        body.__doc__ = f"{description}\n\nArgs:\n" + "".join(f"    {n}: {docs.get(n, n)}\n" for n in names)
        return dsl.pipeline(name=name, description=description)(body)

    def emit(self, level: tuple[str, ...], values: dict[str, Any]) -> None:
        tasks: dict[str, Any] = {}
        for step in self.plan.steps:
            if step.gates == level:
                self.add(step, values, tasks)
        children: list[tuple[str, ...]] = []
        for step in self.plan.steps:
            if len(step.gates) > len(level) and step.gates[: len(level)] == level:
                child = step.gates[: len(level) + 1]
                if child not in children:
                    children.append(child)
        for child in children:
            sub, external = self.subs[child]
            task = sub(**{n: self.resolve(r, values, tasks) for n, r in external.items()})
            inner = [s for s in self.plan.steps if s.gates[: len(child)] == child]
            inner_ids = {s.task_id for s in inner}
            for upstream in sorted({u for s in inner for u in s.upstream} - inner_ids):
                if upstream in tasks:
                    task.after(tasks[upstream])

    def sub_pipeline(self, child: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
        """The sub-pipeline of the steps after gate ``child[-1]`` and the outer values it takes."""
        inner = [s for s in self.plan.steps if s.gates[: len(child)] == child]
        inner_ids = {s.task_id for s in inner}
        gate = child[-1]
        external: dict[str, Any] = {_ref_input(gate, BLESSED): OutputRef(gate, BLESSED)}
        types: dict[str, type] = {_ref_input(gate, BLESSED): bool}
        params = {p.name: p for p in self.plan.params}
        for step in inner:
            for value in [*step.arguments.values(), step.output_root, step.cache]:
                refs = value.parts if isinstance(value, Concat) else (value,)
                for ref in refs:
                    if isinstance(ref, ParamRef):
                        external[ref.name], types[ref.name] = ref, _TYPES[params[ref.name].type]
                    elif isinstance(ref, OutputRef) and ref.task_id not in inner_ids:
                        name = _ref_input(ref.task_id, ref.key)
                        external[name], types[name] = ref, bool if ref.key == BLESSED else str
            if step.output_root is None:
                external[OUTPUT_ROOT], types[OUTPUT_ROOT] = ParamRef(OUTPUT_ROOT), str
        docs = {n: f"Output {r.key} of {r.task_id}" if isinstance(r, OutputRef) else n for n, r in external.items()}
        sub = self.graph(
            pipeline_name(f"{gate}-blessed"),
            f"The tasks after the blessing gate {gate!r}; they run when it is blessed.",
            [_input(n, types[n]) for n in external],
            child,
            docs,
        )
        return sub, external

    def resolve(self, value: Any, values: dict[str, Any], tasks: dict[str, Any]) -> Any:
        if isinstance(value, Const):
            return value.value
        if isinstance(value, ParamRef):
            return values[value.name]
        if isinstance(value, Concat):
            return "".join(str(values[p.name]) if isinstance(p, ParamRef) else p for p in value.parts)
        if isinstance(value, Collected):
            return self.dsl.Collected(tasks[value.task_id].outputs[value.key])
        if isinstance(value, OutputRef):
            if value.task_id in tasks:
                return tasks[value.task_id].outputs[value.key]
            return values[_ref_input(value.task_id, value.key)]
        raise TypeError(f"unexpected argument {value!r}")

    def add(self, step: Step, values: dict[str, Any], tasks: dict[str, Any]) -> None:
        dsl = self.dsl
        arguments = {name: self.resolve(value, values, tasks) for name, value in step.arguments.items()}
        arguments.update(
            claimed_output_root=(
                self.resolve(step.output_root, values, tasks) if step.output_root is not None else values[OUTPUT_ROOT]
            ),
            claimed_dag_id=self.plan.dag_id,
            claimed_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            claimed_task_id=step.task_id,
        )
        arguments[CACHE_INPUT] = self.resolve(step.cache, values, tasks)
        try:
            if step.shards_of:
                task = self.add_mapped(step, arguments, tasks)
            else:
                task = self.components[step.task_id](**arguments)
        except ExportError:
            raise
        except Exception as exc:  # kfp's type checks name the input; we add the task
            raise ExportError(f"task {step.task_id!r}: {exc}") from None
        configure(task, step)
        data = {v.task_id for v in step.arguments.values() if isinstance(v, (OutputRef, Collected))}
        for upstream in sorted(step.upstream - data):
            if upstream in tasks:
                task.after(tasks[upstream])
        tasks[step.task_id] = task

    def add_mapped(self, step: Step, arguments: dict[str, Any], tasks: dict[str, Any]) -> Any:
        """The step once per shard of its input: a step listing the shards (each item carrying the upstream
        outputs the step takes), then ``dsl.ParallelFor`` over it."""
        from claimed_airflow.kfp.shards import shard_items_component

        carried = sorted(name for name, value in step.arguments.items() if isinstance(value, OutputRef))
        source = next(s for s in self.plan.steps if s.task_id == step.shards_of)
        pod = source.pod or default_pod(source.spec)
        lister = shard_items_component(pod.image, self.install_kfp_package)(
            values=tasks[step.shards_of].outputs[VALUES], carry={name: arguments[name] for name in carried}
        )
        configure(lister, source)  # in the input's pod
        with self.dsl.ParallelFor(items=lister.output, name=f"{step.task_id} shards") as shard:
            arguments.update({name: getattr(shard, name) for name in carried})
            arguments["shard_index"] = shard.shard_index
            arguments["claimed_task_id"] = step.task_id + MAPPED
            return self.components[step.task_id](**arguments)


def configure(task: Any, step: Step) -> None:
    """The task's pod (its image is the component's), retries and caching."""
    from kfp import kubernetes

    pod = step.pod or default_pod(step.spec)
    resources = pod.resources  # the component carries them too, but kfp keeps only a task's own settings
    task.set_cpu_request(resources["requests"]["cpu"]).set_memory_request(resources["requests"]["memory"])
    task.set_memory_limit(resources["limits"]["memory"])
    if pod.gpus:
        task.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(pod.gpus)
    if step.pod is not None:
        for name, value in pod.env.items():
            task.set_env_variable(name, value)
        for ref in pod.secrets:
            if ref.kind == "volume":
                kubernetes.use_secret_as_volume(task, secret_name=ref.secret, mount_path=ref.mount)
            else:  # env_all is refused by the plan
                kubernetes.use_secret_as_env(task, secret_name=ref.secret, secret_key_to_env={ref.key: ref.env})
        for toleration in pod.tolerations:
            kubernetes.add_toleration(task, **toleration)
        for key, value in pod.node_selector.items():
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        if pod.image_pull_secrets:
            kubernetes.set_image_pull_secrets(task, list(pod.image_pull_secrets))
        if pod.timeout_s:
            kubernetes.set_timeout(task, pod.timeout_s)
        # KFP's compiler adds allowPrivilegeEscalation=false, drop ALL and seccomp RuntimeDefault itself.
        context = pod.container_security_context
        kubernetes.set_security_context(
            task,
            run_as_user=context["runAsUser"],
            run_as_group=context["runAsGroup"],
            run_as_non_root=context["runAsNonRoot"],
        )
        for key, value in pod.labels.items():
            kubernetes.add_pod_label(task, key, value)
        for key, value in pod.annotations.items():
            kubernetes.add_pod_annotation(task, key, value)
    if step.retries:
        retry: dict[str, Any] = {"num_retries": step.retries}
        if step.retry_delay_s is not None:
            retry["backoff_duration"] = f"{int(step.retry_delay_s)}s"
        retry["backoff_factor"] = 2.0 if step.retry_exponential_backoff else 1.0
        if step.max_retry_delay_s is not None:
            retry["backoff_max_duration"] = f"{int(step.max_retry_delay_s)}s"
        task.set_retry(**retry)
    task.set_caching_options(False)


def export_dag(
    dag: Any,
    path: str | Path,
    *,
    skip: tuple[str, ...] = (),
    output_root: str = "",
    install_kfp_package: bool = False,
) -> Plan:
    """Compile ``dag`` to KFP IR YAML at ``path``; returns the plan it was built from."""
    from kfp import compiler

    plan = plan_dag(dag, skip=skip)
    pipeline = build_pipeline(plan, output_root=output_root, install_kfp_package=install_kfp_package)
    compiler.Compiler().compile(pipeline, str(path))
    return plan


def load_dag(dag_file: str | Path, dag_id: str | None = None) -> Any:
    """Parse ``dag_file`` as Airflow does (a DagBag of that file) and return DAG ``dag_id`` (None: its one DAG)."""
    from claimed_airflow.version_compat import DagBag

    dag_file = Path(dag_file)
    if not dag_file.exists():
        raise ExportError(f"dag file: {dag_file} does not exist")
    with contextlib.redirect_stdout(sys.stderr):  # Airflow logs to stdout; keep stdout for the YAML
        bag = DagBag(dag_folder=str(dag_file))
    if bag.import_errors:
        first = next(iter(bag.import_errors.values())).strip().splitlines()[-1]
        raise ExportError(f"dag file: {dag_file} does not import: {first}")
    if dag_id is None and len(bag.dags) == 1:
        return next(iter(bag.dags.values()))
    if dag_id is None:
        found = ", ".join(sorted(bag.dags)) or "none"
        raise ExportError(f"--dag-id: {dag_file} defines {len(bag.dags)} DAGs ({found}); name one")
    if dag_id not in bag.dags:
        raise ExportError(f"--dag-id: no DAG {dag_id!r} in {dag_file}; found: {', '.join(sorted(bag.dags)) or 'none'}")
    return bag.dags[dag_id]
