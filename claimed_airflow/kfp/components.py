"""A claimed component as a KFP v2 lightweight Python component (kfp imported lazily).

The KFP component has the component's typed parameters (``int`` stays ``NUMBER_INTEGER``, ``bool``
``BOOLEAN``, ...), one string parameter per input artifact (its URI), the scope inputs of
:data:`claimed_airflow.kfp.step.SCOPE_INPUTS` and ``claimed_cache``. Data moves as parameters: one
string per output artifact (the URI our storage committed it to), ``manifest``, ``values`` and, for
gates, ``blessed``, so a downstream step reads the same file whether the steps run on one machine
(``kfp.local``) or in pods against an object store. Beside them, typed KFP artifacts for the UI
(:mod:`claimed_airflow.kfp.ui`: Metrics, ClassificationMetrics, HTML, Markdown, Model).

Why a lightweight Python component rather than a container component running
``claimed-airflow run``: ``kfp.local.SubprocessRunner`` runs lightweight Python components only,
and on a cluster the same component runs in the claimed image (``<image>:<version>[-gpu]``), which
carries kfp's runtime, so nothing is installed when a step starts. The function embedded in the
YAML is two generated lines that call :func:`claimed_airflow.kfp.step.run_step`, the same runner as
the CLI entrypoint and the Airflow operator.
"""

from __future__ import annotations

import os
import tempfile
import typing
from typing import Any

from claimed_airflow.core.component import ComponentSpec, Parameter
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.options import reserved_names
from claimed_airflow.core.pod import TaskPod, resource_requirements, versioned
from claimed_airflow.core.types import unwrap_optional
from claimed_airflow.kfp import ui
from claimed_airflow.kfp.step import BLESSED, CACHE_INPUT, MANIFEST, SCOPE_INPUTS, VALUES, output_names

# Python annotation in the generated function -> KFP type name.
_KFP_TYPES = {"str": "String", "int": "Integer", "float": "Float", "bool": "Boolean", "list": "List", "dict": "Dict"}


def python_type(param: Parameter) -> str:
    """The plain Python type of a parameter as KFP sees it: str, int, float, bool, list or dict."""
    base, optional = unwrap_optional(param.annotation)
    origin = typing.get_origin(base)
    if param.kind != "param" or origin is typing.Literal or base is str:
        return "str"
    if optional and param.default is None and base in (int, float):
        return "str"  # KFP casts number inputs and fails on None; the runner converts the text back
    if base in (int, float, bool):
        return base.__name__
    if origin in (list, tuple) or base in (list, tuple):
        return "list"
    if origin is dict or base is dict:
        return "dict"
    raise ClaimedError(f"{param.name}: type {param.type} has no KFP parameter type")


def function_name(spec: ComponentSpec) -> str:
    return "claimed_" + spec.name.replace(".", "_")


def _check_names(spec: ComponentSpec) -> None:
    operator = sorted({p.name for p in spec.arguments} & reserved_names())
    if operator:
        raise ClaimedError(f"{spec.name}: parameter name(s) {', '.join(operator)} are the claimed operator's own")
    taken = {*SCOPE_INPUTS, CACHE_INPUT, MANIFEST, VALUES, *ui.ARTIFACT_TYPES} | ({BLESSED} if spec.gate else set())
    clash = sorted(taken & {p.name for p in spec.parameters})
    if clash:
        raise ClaimedError(f"{spec.name}: parameter name(s) {', '.join(clash)} are reserved by the KFP adapter")


def step_source(spec: ComponentSpec) -> str:
    """The function embedded in the KFP component: the typed signature and a call of ``run_step``."""
    _check_names(spec)
    required = [f"{p.name}: {python_type(p)}" for p in spec.arguments if p.required]
    typed = [f"{name}: Output[{ui.ARTIFACT_TYPES[name]}]" for name in ui.ui_outputs(spec)]
    optional = [f"{p.name}: {python_type(p)} = {p.default!r}" for p in spec.arguments if not p.required]
    arguments = [*required, *typed, *optional, *(f"{name}: str = ''" for name in SCOPE_INPUTS)]
    arguments.append(f"{CACHE_INPUT}: bool = False")
    fields = [(name, "str") for name in output_names(spec)]
    fields[len(spec.outputs) + 1] = (VALUES, "dict")
    if spec.gate:
        fields[-1] = (BLESSED, "bool")
    returns = "NamedTuple('Outputs', [" + ", ".join(f"({n!r}, {t})" for n, t in fields) + "])"
    lines = [f"def {function_name(spec)}(", *(f"    {a}," for a in arguments), f") -> {returns}:"]
    lines += [
        f'    """Run the claimed component ``{spec.name}`` through claimed_airflow.core.runner."""',
        "    arguments = dict(locals())",
        "    from claimed_airflow.kfp.step import run_step",
        "",
        f"    return run_step({spec.reference!r}, arguments)",
        "",
    ]
    return "\n".join(lines)


def _claimed_step_template():  # no annotations: kfp reads them (and `from __future__` makes them strings)
    """Placeholder whose lightweight-component command kfp builds; its source is replaced by ours."""


def _lightweight_command(spec: ComponentSpec, image: str, install_kfp_package: bool) -> tuple[list[str], list[str]]:
    """Command and args of a lightweight Python component in ``image`` running ``step_source``.

    kfp builds them for a placeholder function (pip bootstrap, ``kfp.dsl.executor_main``, the
    module header); only the embedded function source and the function name are ours.
    """
    import warnings

    from kfp import dsl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        template = dsl.component(_claimed_step_template, base_image=image, install_kfp_package=install_kfp_package)
    container = template.component_spec.implementation.container
    command, args = list(container.command), list(container.args)
    marker = f"def {_claimed_step_template.__name__}("
    if marker not in command[-1] or _claimed_step_template.__name__ not in args:
        raise RuntimeError("unexpected layout of kfp's lightweight component command; kfp version not supported")
    command[-1] = command[-1].split(marker)[0] + step_source(spec)
    args = [function_name(spec) if a == _claimed_step_template.__name__ else a for a in args]
    return command, args


def default_pod(spec: ComponentSpec) -> TaskPod:
    """The pod of a component exported on its own: ``<image>:<version>[-gpu]`` and its default resources."""
    resources = spec.resources
    image = versioned(spec.image, resources.gpus)  # not the settings of the machine that exports
    return TaskPod(image=image, cpu=resources.cpu, memory=resources.memory, gpus=resources.gpus)


def component_spec(
    spec: ComponentSpec, *, name: str | None = None, install_kfp_package: bool = False, pod: TaskPod | None = None
):
    """The ``kfp.dsl.structures.ComponentSpec`` of a claimed component in ``pod``'s image with its resources."""
    from kfp.dsl import structures

    pod = pod or default_pod(spec)
    inputs = {}
    for param in spec.arguments:
        kfp_type = _KFP_TYPES[python_type(param)]
        optional = not param.required
        default = param.default if optional else None
        inputs[param.name] = structures.InputSpec(
            type=kfp_type, default=default, optional=optional, description=param.description or None
        )
    for scope_name, description in SCOPE_INPUTS.items():
        inputs[scope_name] = structures.InputSpec(type="String", default="", optional=True, description=description)
    inputs[CACHE_INPUT] = structures.InputSpec(
        type="Boolean",
        default=False,
        optional=True,
        description="Reuse the outputs of an earlier run with the same component version, parameters and input "
        "contents (the content-hash cache under the output root).",
    )
    docs = {p.name: f"URI of: {p.description}" for p in spec.outputs}
    docs.update(
        {
            MANIFEST: "URI of the run manifest (parameters, input/output URIs and hashes).",
            VALUES: "The small values the component returned (metrics), as a JSON object.",
            BLESSED: "Whether the condition held (downstream steps run under dsl.If on it).",
        }
    )
    outputs = {}
    for output in output_names(spec):
        kfp_type = "Dict" if output == VALUES else "Boolean" if output == BLESSED else "String"
        outputs[output] = structures.OutputSpec(type=kfp_type, description=docs[output])
    for output in ui.ui_outputs(spec):
        outputs[output] = structures.OutputSpec(type=f"system.{ui.ARTIFACT_TYPES[output]}@0.0.1")
    command, args = _lightweight_command(spec, pod.image, install_kfp_package)
    requirements = resource_requirements(pod.cpu, pod.memory, pod.gpus)
    resources = structures.ResourceSpec(
        cpu_request=requirements["requests"]["cpu"],
        memory_request=requirements["requests"]["memory"],
        memory_limit=requirements["limits"]["memory"],
        accelerator_type="nvidia.com/gpu" if pod.gpus else None,
        accelerator_count=str(pod.gpus) if pod.gpus else None,
    )
    return structures.ComponentSpec(
        name=name or function_name(spec),
        description=spec.description,
        inputs=inputs,
        outputs=outputs,
        implementation=structures.Implementation(
            container=structures.ContainerSpecImplementation(
                image=pod.image, command=command, args=args, resources=resources
            )
        ),
    )


def component_yaml(
    spec: ComponentSpec, *, name: str | None = None, install_kfp_package: bool = False, pod: TaskPod | None = None
) -> str:
    """The component as KFP IR YAML (what the KFP UI, ``load_component_from_*`` and Elyra read)."""
    kfp_spec = component_spec(spec, name=name, install_kfp_package=install_kfp_package, pod=pod)
    handle, path = tempfile.mkstemp(suffix=".yaml", prefix="claimed-kfp-")
    os.close(handle)
    try:
        kfp_spec.save_to_component_yaml(path)
        with open(path) as stream:
            return stream.read()
    finally:
        os.unlink(path)


def load_component(
    spec: ComponentSpec, *, name: str | None = None, install_kfp_package: bool = False, pod: TaskPod | None = None
) -> Any:
    """The component loaded back through kfp's own loader, ready to be called in a pipeline."""
    from kfp import components

    text = component_yaml(spec, name=name, install_kfp_package=install_kfp_package, pod=pod)
    return components.load_component_from_text(text)
