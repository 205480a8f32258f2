"""A DAG of claimed operators -> an engine-neutral plan of steps, or a clear refusal.

The plan is what the KFP pipeline is built from (:mod:`claimed_airflow.kfp.pipeline`). Building it
needs Airflow (the DAG objects) but not kfp, so what cannot be exported is refused early, naming the
task and the reason, and never turned into a silently different pipeline:

- tasks that are not claimed operators (PythonOperator, BashOperator, sensors, branching; the
  blessing gate is the one supported condition and becomes ``dsl.If`` on its ``blessed`` output);
  ``skip=[task ids]`` leaves such tasks out on purpose (their ``>>`` edges are bridged). A reviewer's
  approval (``ModelApprovalOperator``) becomes the step of :mod:`claimed_airflow.kfp.approval`: it passes
  when its ``required`` is false and fails, saying Kubeflow has no reviewer step, when it is true;
- dynamic task mapping (``.expand()``) other than a data-parallel component over the shards of an
  input (``.expand(shard_index=shard_indexes(input))``, which becomes ``dsl.ParallelFor``, and the
  shard outputs a merge reads, ``dsl.Collected``), setup/teardown tasks, trigger rules other than
  ``all_success``;
- templates other than ``{{ params.NAME }}`` (``{{ ds }}``, ``{{ ti.xcom_pull(...) }}``, macros,
  filters, ``{% ... %}``), and XCom references other than ``task.output["<output>"]`` (output
  artifacts, ``manifest``, a gate's ``blessed``).
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from claimed_airflow.core.component import ComponentSpec
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.pod import TaskPod
from claimed_airflow.core.types import coerce
from claimed_airflow.kfp.components import python_type
from claimed_airflow.kfp.step import BLESSED, MANIFEST

OUTPUT_ROOT = "output_root"  # the pipeline parameter every step's outputs go under
_PARAM_TYPES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
}
_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.S)
_PARAM_REF = re.compile(r"^\s*params\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*(['\"])([A-Za-z_]\w*)\2\s*\])\s*$")
_JINJA_MARKERS = ("{{", "{%", "{#")


class ExportError(ClaimedError):
    """The DAG cannot become a KFP pipeline as it is; the message names the task and the reason."""


# Argument values of a step: a constant, a pipeline parameter, text mixed with pipeline parameters,
# or an output of an upstream step.
@dataclass(frozen=True)
class Const:
    value: Any


@dataclass(frozen=True)
class ParamRef:
    name: str


@dataclass(frozen=True)
class Concat:
    parts: tuple  # str or ParamRef


@dataclass(frozen=True)
class OutputRef:
    task_id: str
    key: str


@dataclass(frozen=True)
class Collected:
    """The output ``key`` of every shard of the mapped step ``task_id`` (a list, in shard order)."""

    task_id: str
    key: str


@dataclass(frozen=True)
class PipelineParam:
    name: str
    type: str  # str, int, float, bool, list, dict
    default: Any = None
    required: bool = False
    description: str = ""


@dataclass
class Step:
    task_id: str
    spec: ComponentSpec
    arguments: dict[str, Any]
    upstream: set[str]
    output_root: Any = None  # None: the pipeline's output_root parameter
    gate: bool = False  # a blessing gate: downstream steps run under dsl.If(blessed)
    gates: tuple[str, ...] = ()  # the blessing gates this step runs under, outermost first
    retries: int = 0
    retry_delay_s: float | None = None
    retry_exponential_backoff: bool = False
    max_retry_delay_s: float | None = None
    data_upstream: set[str] = field(default_factory=set)
    pod: TaskPod | None = None  # the pod the kubernetes engine would run (None: the component's defaults)
    cache: Any = Const(False)  # Const(bool) or ParamRef of a boolean pipeline parameter
    shards_of: str = ""  # a mapped step: one per shard of this input step (dsl.ParallelFor)


@dataclass
class Plan:
    dag_id: str
    description: str
    params: list[PipelineParam]
    steps: list[Step]  # topological order

    def step(self, task_id: str) -> Step:
        return next(s for s in self.steps if s.task_id == task_id)


def plan_dag(dag: Any, *, skip: Iterable[str] = ()) -> Plan:
    """Check every task of ``dag`` and describe it as steps; raise :class:`ExportError` otherwise."""
    skip = set(skip)
    unknown = sorted(skip - set(dag.task_dict))
    if unknown:
        raise ExportError(f"skip: no task {', '.join(map(repr, unknown))} in DAG {dag.dag_id!r}")
    params = pipeline_params(dag)
    by_name = {p.name: p for p in params}
    # the small task of shard_indexes() is no step: the mapped step loops over the input's shard_index
    skip |= {t.task_id for t in dag.tasks if getattr(t, "claimed_shards_of", None)}
    order = [t for t in dag.topological_sort() if t.task_id not in skip]
    steps = [_step(task, by_name) for task in order]
    kept = {s.task_id for s in steps}
    for step in steps:
        step.upstream = _bridged_upstream(dag, step.task_id, skip)
        for ref in step.data_upstream:
            if ref not in kept:
                raise ExportError(f"task {step.task_id!r}: uses an output of {ref!r}, which is skipped")
    _assign_gates(steps)
    for step in steps:
        if step.shards_of and step.gates:
            raise ExportError(f"task {step.task_id!r}: a mapped task after a blessing gate cannot be exported")
    return Plan(dag_id=dag.dag_id, description=dag.description or "", params=params, steps=steps)


def pipeline_params(dag: Any) -> list[PipelineParam]:
    """DAG Params -> typed pipeline parameters (JSON-schema ``type``, else the default's type)."""
    params = []
    for name in dag.params:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ExportError(f"param {name!r}: a pipeline parameter name must be a Python identifier")
        if name == OUTPUT_ROOT:
            raise ExportError(f"param {name!r}: reserved for the pipeline's output root; rename the DAG param")
        param = dag.params.get_param(name)
        default = param.value
        required = type(default).__name__ == "ArgNotSet"
        default = None if required else default
        schema = getattr(param, "schema", {}) or {}
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), None)
        if kind is None:
            kind = _type_of(default)
        elif kind not in _PARAM_TYPES:
            raise ExportError(f"param {name!r}: JSON-schema type {kind!r} has no pipeline parameter type")
        else:
            kind = _PARAM_TYPES[kind]
        if default is not None:
            default = _as_type(name, default, kind)
        params.append(
            PipelineParam(name, kind, default, required, " ".join((getattr(param, "description", "") or "").split()))
        )
    return params


def _type_of(value: Any) -> str:
    for kind in (bool, int, float, list, dict):
        if isinstance(value, kind):
            return kind.__name__
    return "str"


def _as_type(name: str, value: Any, kind: str) -> Any:
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if _type_of(value) != kind:
        raise ExportError(f"param {name!r}: default {value!r} is not of its type {kind}")
    return value


def _refuse_task(task: Any) -> None:
    """Raise for a task that cannot be a KFP step, naming it and saying why."""
    from claimed_airflow.operators.base import ClaimedOperator
    from claimed_airflow.version_compat import BaseSensorOperator, BranchMixIn, MappedOperator, SkipMixin

    hint = f" (leave it out with --skip {task.task_id})"
    kind = type(task).__name__
    if isinstance(task, MappedOperator) and _shards_input(task) is None:
        raise ExportError(
            f"task {task.task_id!r}: dynamic task mapping (.expand()) is not supported by the KFP export; "
            "give the mapped values as one list parameter or make one task per value"
        )
    if isinstance(task, MappedOperator):
        return
    if not isinstance(task, ClaimedOperator):
        if isinstance(task, BaseSensorOperator):
            reason = f"is a sensor ({kind}); waiting on Airflow-side conditions has no KFP equivalent"
        elif isinstance(task, BranchMixIn) or isinstance(task, SkipMixin):
            reason = (
                f"is a branching/skipping operator ({kind}); only the blessing gate "
                "(ConditionBlessingDeployOperator) is exported, as dsl.If"
            )
        else:
            reason = f"is a {kind}, not a claimed operator; only claimed components can run as KFP steps"
        raise ExportError(f"task {task.task_id!r}: {reason}{hint}")
    if getattr(task, "is_setup", False) or getattr(task, "is_teardown", False):
        raise ExportError(f"task {task.task_id!r}: setup/teardown tasks have no KFP equivalent{hint}")
    rule = str(getattr(task.trigger_rule, "value", task.trigger_rule))
    if rule != "all_success":
        raise ExportError(
            f"task {task.task_id!r}: trigger rule {rule!r} has no KFP equivalent (steps run when all upstream succeed)"
        )


def _shards_input(task: Any) -> str | None:
    """The input step a mapped claimed task loops over (``.expand(shard_index=shard_indexes(input))``), or None."""
    from claimed_airflow.operators.base import ClaimedOperator

    expanded = getattr(getattr(task, "expand_input", None), "value", None)
    if not isinstance(expanded, dict) or set(expanded) != {"shard_index"}:
        return None
    operator = getattr(expanded["shard_index"], "operator", None)
    source = getattr(operator, "claimed_shards_of", None)
    component = getattr(getattr(task, "operator_class", None), "component", "")
    if not source or not issubclass(task.operator_class, ClaimedOperator) or not component:
        return None
    from claimed_airflow.core import registry

    return source if registry.get(component).data_parallel else None


def _mapped_step(task: Any, params: dict[str, PipelineParam]) -> Step:
    """A data-parallel claimed task expanded over an input's shards: the step of its task instance of shard 0
    (arguments, pod, retries, cache), run once per shard inside ``dsl.ParallelFor``."""
    source = _shards_input(task)
    step = _step(task.unmap({"shard_index": 0}), params)
    step.arguments.pop("shard_index", None)  # the loop item
    step.shards_of = source
    step.data_upstream.add(source)
    return step


def _approval_step(task: Any, params: dict[str, PipelineParam]) -> Step:
    """A reviewer's approval -> the Kubeflow approval step on the task's ``required`` value, in the pod the
    settings give every step (image, pull secrets, node selector)."""
    from claimed_airflow.core.options import KubernetesOptions
    from claimed_airflow.core.pod import task_pod
    from claimed_airflow.kfp.approval import kubeflow_approval

    spec = kubeflow_approval.spec
    (param,) = spec.arguments
    required = _argument(task.task_id, param.name, task.required, param, params)
    pod = task_pod(KubernetesOptions(), spec)
    return Step(task_id=task.task_id, spec=spec, arguments={param.name: required}, upstream=set(), pod=pod)


def _step(task: Any, params: dict[str, PipelineParam]) -> Step:
    from claimed_airflow.core import registry

    if getattr(task, "human_approval", False):
        return _approval_step(task, params)
    _refuse_task(task)
    if getattr(task, "expand_input", None) is not None:
        return _mapped_step(task, params)
    spec = registry.get(task.component)
    known = {p.name: p for p in spec.arguments}
    arguments = {}
    data_upstream: set[str] = set()
    for name, value in task.component_arguments().items():
        if name not in known:
            raise ExportError(f"task {task.task_id!r}: {spec.name} has no parameter {name!r}")
        converted = _argument(task.task_id, name, value, known[name], params)
        if isinstance(converted, (OutputRef, Collected)):
            data_upstream.add(converted.task_id)
        arguments[name] = converted
    output_root = None
    if task.output_root is not None:
        output_root = _template(task.task_id, "output_root", str(task.output_root), params)
    delay = getattr(task, "retry_delay", None)
    max_delay = getattr(task, "max_retry_delay", None)
    pod = task_pod_of(task, spec)
    return Step(
        task_id=task.task_id,
        spec=spec,
        arguments=arguments,
        upstream=set(),
        output_root=output_root,
        gate=bool(task.gate and spec.gate),
        retries=int(task.retries or 0),
        retry_delay_s=delay.total_seconds() if delay is not None else None,
        retry_exponential_backoff=bool(getattr(task, "retry_exponential_backoff", False)),
        max_retry_delay_s=max_delay.total_seconds() if max_delay is not None else None,
        data_upstream=data_upstream,
        pod=pod,
        cache=_cache(task, params),
    )


# Engine options a KFP step cannot express; anything else of the pod is in :class:`TaskPod`.
_POD_ONLY = {
    "pod_options": "further KubernetesPodOperator arguments have no KFP equivalent; use the task's own "
    "options (image, cpu, memory, gpus, node_selector, tolerations, image_pull_secrets, secrets, env_vars)",
    "namespace": "a KFP step runs in the namespace of its pipeline run",
    "spark_conf": "a KFP step runs Spark inside its pod (local[*]); spark-submit settings do not apply",
}


def task_pod_of(task: Any, spec: ComponentSpec) -> TaskPod:
    """The pod of ``task`` as the kubernetes engine builds it (settings read now), or a refusal naming the option."""
    from claimed_airflow.core.pod import task_pod

    try:
        options, spark = task.engine_options()
    except ClaimedError as exc:
        raise ExportError(str(exc)) from None
    given = {"pod_options": options.pod_options, "namespace": options.namespace, "spark_conf": spark.conf}
    for option, reason in _POD_ONLY.items():
        if given[option]:
            raise ExportError(f"task {task.task_id!r}: {option}: {reason}")
    try:
        pod = task_pod(options, spec, retries=task.retries, timeout=task.execution_timeout)
    except ClaimedError as exc:
        raise ExportError(f"task {task.task_id!r}: {exc}") from None
    for ref in pod.secrets:
        if ref.kind == "env_all":
            raise ExportError(
                f"task {task.task_id!r}: secrets: {{'secret': {ref.secret!r}}} (every key as environment) has no "
                "KFP equivalent; name each key: {'env': VAR, 'secret': name, 'key': key}"
            )
        if ref.kind == "volume" and ref.key:
            raise ExportError(
                f"task {task.task_id!r}: secrets: mounting only key {ref.key!r} of {ref.secret!r} has no KFP "
                "equivalent; mount the whole secret (leave out key)"
            )
    return pod


def _cache(task: Any, params: dict[str, PipelineParam]) -> Any:
    """The task's ``cache`` as Const(bool) or a boolean pipeline parameter (unset: the ``cache`` setting, now)."""
    value = task.cache
    if value is None or value == "":
        from claimed_airflow.core.settings import flag_setting

        return Const(flag_setting("cache"))
    if isinstance(value, str):
        converted = _template(task.task_id, "cache", value, params)
        if isinstance(converted, ParamRef):
            kind = params[converted.name].type
            if kind != "bool":
                raise ExportError(
                    f"task {task.task_id!r}: cache: DAG param {converted.name!r} is {kind}; give it type boolean"
                )
            return converted
        if isinstance(converted, Concat):
            raise ExportError(f"task {task.task_id!r}: cache: text mixed with params cannot be exported")
        value = converted.value
    try:
        return Const(coerce("cache", value, bool))
    except ClaimedError as exc:
        raise ExportError(f"task {task.task_id!r}: {exc}") from None


def _argument(task_id: str, name: str, value: Any, param, params: dict[str, PipelineParam]) -> Any:
    from claimed_airflow.operators.base import ClaimedOperator
    from claimed_airflow.version_compat import PlainXComArg, XComArg

    where = f"task {task_id!r}: {name}"
    if isinstance(value, XComArg):
        if not isinstance(value, PlainXComArg):
            raise ExportError(f"{where}: {type(value).__name__} (map/zip/concat of XComs) cannot be exported")
        upstream, key = value.operator, value.key
        if _shards_input(upstream) is not None:  # a merge of the shards' outputs
            from claimed_airflow.core import registry

            up_spec = registry.get(upstream.operator_class.component)
            if key not in [p.name for p in up_spec.outputs]:
                raise ExportError(f"{where}: {upstream.task_id}.output[{key!r}] of every shard is not an output")
            return Collected(upstream.task_id, key)
        if not isinstance(upstream, ClaimedOperator):
            raise ExportError(f"{where}: uses the XCom of {upstream.task_id!r}, which is not a claimed operator")
        from claimed_airflow.core import registry

        up_spec = registry.get(upstream.component)
        allowed = [p.name for p in up_spec.outputs] + [MANIFEST] + ([BLESSED] if up_spec.gate else [])
        if key in (None, "return_value"):
            raise ExportError(
                f"{where}: uses the whole XCom of {upstream.task_id!r}; pass one output, "
                f"e.g. {upstream.task_id}.output[{allowed[0]!r}]"
            )
        if key not in allowed:
            raise ExportError(
                f"{where}: {upstream.task_id}.output[{key!r}] is a returned value, not an output; "
                f"the KFP export passes {', '.join(allowed)}"
            )
        return OutputRef(upstream.task_id, key)
    if isinstance(value, str):
        converted = _template(task_id, name, value, params)
        if isinstance(converted, Const):
            return Const(_coerce(where, name, converted.value, param))
        expected = python_type(param)
        if isinstance(converted, ParamRef):
            actual = next(p for p in params.values() if p.name == converted.name).type
            if actual != expected:
                raise ExportError(
                    f"{where}: is {expected} but DAG param {converted.name!r} is {actual}; "
                    f"give the Param the JSON-schema type of {expected}"
                )
        elif expected != "str":
            raise ExportError(f"{where}: text mixed with params is only exported for string parameters, not {expected}")
        return converted
    if _has_dynamic(value):
        raise ExportError(f"{where}: templates or XComs inside a list/dict cannot be exported")
    return Const(_coerce(where, name, value, param))


def _coerce(where: str, name: str, value: Any, param) -> Any:
    try:
        return coerce(name, value, param.annotation)
    except ClaimedError as exc:
        raise ExportError(f"{where}: {exc}") from None


def _has_dynamic(value: Any) -> bool:
    from claimed_airflow.version_compat import XComArg

    if isinstance(value, XComArg):
        return True
    if isinstance(value, str):
        return any(marker in value for marker in _JINJA_MARKERS)
    if isinstance(value, dict):
        return any(_has_dynamic(k) or _has_dynamic(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return any(_has_dynamic(v) for v in value)
    return False


def _template(task_id: str, name: str, text: str, params: dict[str, PipelineParam]) -> Any:
    """A templated string -> Const, ParamRef or Concat; anything but ``{{ params.X }}`` is refused."""
    if not any(marker in text for marker in _JINJA_MARKERS):
        return Const(text)
    where = f"task {task_id!r}: {name}"
    parts: list = []
    position = 0
    for match in _EXPRESSION.finditer(text):
        parts.append(text[position : match.start()])
        ref = _PARAM_REF.match(match.group(1))
        if not ref:
            raise ExportError(
                f"{where}: template {match.group(0)!r} uses Airflow-only context; "
                "only {{ params.NAME }} is exported (as a pipeline parameter)"
            )
        param = ref.group(1) or ref.group(3)
        if param not in params:
            raise ExportError(f"{where}: {match.group(0)!r} refers to {param!r}, which is not a DAG param")
        parts.append(ParamRef(param))
        position = match.end()
    parts.append(text[position:])
    for part in parts:
        if isinstance(part, str) and any(marker in part for marker in _JINJA_MARKERS):
            raise ExportError(f"{where}: Jinja statements or comments in {text!r} cannot be exported")
    parts = [p for p in parts if p != ""]
    if len(parts) == 1 and isinstance(parts[0], ParamRef):
        return parts[0]
    return Concat(tuple(parts))


def _bridged_upstream(dag: Any, task_id: str, skip: set[str]) -> set[str]:
    """Upstream task ids, looking through skipped tasks to their own upstream."""
    found, todo, seen = set(), list(dag.task_dict[task_id].upstream_task_ids), set()
    while todo:
        up = todo.pop()
        if up in seen:
            continue
        seen.add(up)
        if up in skip:
            todo.extend(dag.task_dict[up].upstream_task_ids)
        else:
            found.add(up)
    return found


def _assign_gates(steps: list[Step]) -> None:
    """Each step runs under the gates among its ancestors, which must nest (one after the other)."""
    ancestors: dict[str, set[str]] = {}
    position = {s.task_id: i for i, s in enumerate(steps)}
    for step in steps:  # topological order: upstream ancestors are known
        ancestors[step.task_id] = set(step.upstream).union(*(ancestors[u] for u in step.upstream))
    gates = {s.task_id for s in steps if s.gate}
    for step in steps:
        chain = sorted(ancestors[step.task_id] & gates, key=position.__getitem__)
        for outer, inner in zip(chain, chain[1:], strict=False):
            if outer not in ancestors[inner]:
                raise ExportError(
                    f"task {step.task_id!r}: runs after two independent gates {outer!r} and {inner!r}; "
                    "KFP conditions nest, so one gate must run after the other"
                )
        step.gates = tuple(chain)
