"""A plan of claimed steps (from a DAG) -> a KFP v2 pipeline, compiled to IR YAML (kfp imported lazily).

Mapping (Airflow -> KFP):

- each claimed task -> a task of the task's claimed KFP component (named after the task), with the
  same parameter values; ``{{ params.x }}`` -> the pipeline parameter ``x`` (DAG Params become
  typed pipeline parameters with the same defaults); text with params -> a KFP string concatenation;
- ``upstream.output["images"]`` -> ``upstream_task.outputs["images"]`` (the URI); ``a >> b`` ->
  ``b.after(a)``;
- the blessing gate -> ``with dsl.If(gate.outputs["blessed"] == True)`` around every task after it
  (in Airflow they are skipped when not blessed);
- resources of the component -> cpu/memory requests and limits, ``nvidia.com/gpu`` accelerator;
  ``retries``/``retry_delay``/``retry_exponential_backoff``/``max_retry_delay`` -> ``set_retry``;
  caching off (an Airflow task always runs);
- outputs go to ``<output_root>/<dag_id>/<KFP run id>/<task_id>/<output>`` (``output_root`` is a
  pipeline parameter; the run id is ``dsl.PIPELINE_JOB_ID_PLACEHOLDER``).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from claimed_airflow.kfp.components import load_component
from claimed_airflow.kfp.plan import OUTPUT_ROOT, Concat, Const, ExportError, OutputRef, ParamRef, Plan, Step, plan_dag
from claimed_airflow.kfp.step import BLESSED

_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}


def pipeline_name(dag_id: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", dag_id.lower()).strip("-") or "pipeline"


def build_pipeline(plan: Plan, *, output_root: str = "", install_kfp_package: bool = True) -> Any:
    """The KFP pipeline (a ``GraphComponent``) of ``plan``; ``output_root`` is the parameter's default."""
    from kfp import dsl

    components = {
        s.task_id: load_component(s.spec, name=s.task_id, install_kfp_package=install_kfp_package) for s in plan.steps
    }
    names = [p.name for p in plan.params] + [OUTPUT_ROOT]

    def pipeline_body(*channels):
        values = dict(zip(names, channels, strict=True))
        tasks: dict[str, Any] = {}

        def resolve(value: Any) -> Any:
            if isinstance(value, Const):
                return value.value
            if isinstance(value, ParamRef):
                return values[value.name]
            if isinstance(value, Concat):
                return "".join(str(values[p.name]) if isinstance(p, ParamRef) else p for p in value.parts)
            if isinstance(value, OutputRef):
                return tasks[value.task_id].outputs[value.key]
            raise TypeError(f"unexpected argument {value!r}")

        def add(step: Step) -> None:
            arguments = {name: resolve(value) for name, value in step.arguments.items()}
            arguments.update(
                claimed_output_root=resolve(step.output_root) if step.output_root is not None else values[OUTPUT_ROOT],
                claimed_dag_id=plan.dag_id,
                claimed_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                claimed_task_id=step.task_id,
            )
            try:
                task = components[step.task_id](**arguments)
            except Exception as exc:  # kfp's type checks name the input, we add the task
                raise ExportError(f"task {step.task_id!r}: {exc}") from None
            configure(task, step)
            data = {v.task_id for v in step.arguments.values() if isinstance(v, OutputRef)}
            for upstream in sorted(step.upstream - data):
                task.after(tasks[upstream])
            tasks[step.task_id] = task

        def emit(level: tuple[str, ...]) -> None:
            for step in plan.steps:
                if step.gates == level:
                    add(step)
            children = []
            for step in plan.steps:
                if len(step.gates) > len(level) and step.gates[: len(level)] == level:
                    child = step.gates[: len(level) + 1]
                    if child not in children:
                        children.append(child)
            for child in children:
                gate = child[-1]
                with dsl.If(tasks[gate].outputs[BLESSED] == True, name=f"{gate} blessed"):  # noqa: E712
                    emit(child)

        emit(())

    parameters = [
        inspect.Parameter(
            p.name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=_TYPES[p.type],
            default=inspect.Parameter.empty if p.required else p.default,
        )
        for p in plan.params
    ]
    parameters.append(inspect.Parameter(OUTPUT_ROOT, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str, default=output_root))
    # kfp reads the pipeline's inputs from the function's signature and their descriptions from its docstring.
    pipeline_body.__signature__ = inspect.Signature(parameters)
    pipeline_body.__name__ = pipeline_body.__qualname__ = pipeline_name(plan.dag_id).replace("-", "_")
    docs = [f"    {p.name}: {p.description or p.name}" for p in plan.params]
    docs.append(f"    {OUTPUT_ROOT}: Root URI of the outputs (s3://... on a cluster; empty: $CLAIMED_OUTPUT_ROOT).")
    pipeline_body.__doc__ = f"{plan.description or plan.dag_id}\n\nArgs:\n" + "\n".join(docs) + "\n"
    return dsl.pipeline(name=pipeline_name(plan.dag_id), description=plan.description or None)(pipeline_body)


def configure(task: Any, step: Step) -> None:
    """Resources, retries and caching of a KFP task, from the component spec and the Airflow task."""
    resources = step.spec.resources
    task.set_cpu_request(resources.cpu).set_cpu_limit(resources.cpu)
    task.set_memory_request(resources.memory).set_memory_limit(resources.memory)
    if resources.gpus:
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(resources.gpus)
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
    install_kfp_package: bool = True,
) -> Plan:
    """Compile ``dag`` to KFP IR YAML at ``path``; returns the plan it was built from."""
    from kfp import compiler

    plan = plan_dag(dag, skip=skip)
    pipeline = build_pipeline(plan, output_root=output_root, install_kfp_package=install_kfp_package)
    compiler.Compiler().compile(pipeline, str(path))
    return plan


def load_dag(dag_file: str | Path, dag_id: str) -> Any:
    """Parse ``dag_file`` as Airflow does (a DagBag of that file) and return DAG ``dag_id``."""
    from airflow.dag_processing.dagbag import DagBag

    dag_file = Path(dag_file)
    if not dag_file.exists():
        raise ExportError(f"dag file: {dag_file} does not exist")
    bag = DagBag(dag_folder=str(dag_file))
    if bag.import_errors:
        first = next(iter(bag.import_errors.values())).strip().splitlines()[-1]
        raise ExportError(f"dag file: {dag_file} does not import: {first}")
    if dag_id not in bag.dags:
        raise ExportError(f"--dag-id: no DAG {dag_id!r} in {dag_file}; found: {', '.join(sorted(bag.dags)) or 'none'}")
    return bag.dags[dag_id]
