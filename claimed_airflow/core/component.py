"""A component is a typed Python function; its spec is derived from the signature and docstring."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import docstring_parser

from claimed_airflow.core.errors import ParameterError
from claimed_airflow.core.types import InputPath, OutputPath, choices, coerce, type_name, unwrap_optional

REQUIRED = inspect.Parameter.empty
DEFAULT_IMAGE = "ghcr.io/claimed-framework/claimed-airflow"


@dataclass(frozen=True)
class Parameter:
    """A typed parameter (``kind='param'``), input artifact (``'input'``) or output artifact (``'output'``)."""

    name: str
    kind: str
    type: str
    description: str = ""
    default: Any = None
    required: bool = False
    choices: tuple | None = None
    annotation: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("annotation")
        if data["choices"] is None:
            data.pop("choices")
        return data


@dataclass(frozen=True)
class Resources:
    cpu: str = "1"
    memory: str = "2Gi"
    gpus: int = 0


@dataclass(frozen=True)
class UiOutputs:
    """What a run shows beside its output URIs (the Kubeflow UI's typed outputs; :mod:`claimed_airflow.kfp.ui`).

    :param confusion_matrix: The output holding a JSON object with ``classes`` and ``matrix``.
    :param image_folder: The output that is a folder of PNG images to show (PNG file outputs are always shown).
    :param model: The run returns a model (``model_uri``, ``model_version``); an output named ``model`` is one too.
    """

    confusion_matrix: str | None = None
    image_folder: str | None = None
    model: bool = False


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    category: str
    description: str
    summary: str
    function: Callable = field(repr=False, compare=False)
    parameters: tuple[Parameter, ...] = ()
    resources: Resources = Resources()
    image: str = DEFAULT_IMAGE
    operator: str = ""
    gate: bool = False
    data_parallel: bool = False  # runs once per shard: takes shard_tables + shard_index (core.sharding)
    ui: UiOutputs = UiOutputs()

    @property
    def reference(self) -> str:
        """How every engine finds this component: its name for the library, ``module:function`` otherwise."""
        module = getattr(self.function, "__module__", "")
        if module.startswith("claimed_airflow.components."):
            return self.name
        return f"{module}:{self.function.__qualname__}"

    @property
    def inputs(self) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if p.kind == "input")

    @property
    def outputs(self) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if p.kind == "output")

    @property
    def params(self) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if p.kind == "param")

    @property
    def arguments(self) -> tuple[Parameter, ...]:
        """What a caller passes: parameters and input artifacts (outputs are placed by the runner)."""
        return tuple(p for p in self.parameters if p.kind != "output")

    def bind(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and coerce caller values; fill defaults; reject unknown or missing ones."""
        known = {p.name: p for p in self.arguments}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ParameterError(
                f"{self.name}: unknown parameter(s) {', '.join(unknown)}; expected: {', '.join(known)}"
            )
        bound = {}
        for name, param in known.items():
            if name in values:
                bound[name] = coerce(name, values[name], param.annotation)
            elif param.required:
                raise ParameterError(f"{name}: required by {self.name} but not given")
            else:
                bound[name] = param.default
        return bound

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "category": self.category,
            "summary": self.summary,
            "description": self.description,
            "operator": self.operator,
            "image": self.image,
            "resources": asdict(self.resources),
            "gate": self.gate,
            "data_parallel": self.data_parallel,
            "parameters": [p.to_dict() for p in self.params],
            "inputs": [p.to_dict() for p in self.inputs],
            "outputs": [p.to_dict() for p in self.outputs],
        }


# How words of component names are spelled in operator class names (otherwise: capitalized).
SPELLING = {"chestxray": "ChestXray", "kserve": "KServe", "ml": "ML", "mobilenet": "MobileNet", "ts": "TimeSeries"}


def operator_name(category: str, name: str) -> str:
    """The operator class of component ``category.name``: ``{Name}{Category}Operator``, words capitalized
    (``SPELLING`` for brands and abbreviations), e.g. ``transform.spark_sql`` -> ``SparkSqlTransformOperator``."""
    words = [*name.split("_"), *category.split("_")]
    return "".join(SPELLING.get(w, w[:1].upper() + w[1:]) for w in words if w) + "Operator"


def derive_spec(
    function: Callable,
    *,
    category: str,
    name: str | None = None,
    resources: Resources = Resources(),
    image: str = DEFAULT_IMAGE,
    operator: str | None = None,
    gate: bool = False,
    data_parallel: bool = False,
    ui: UiOutputs = UiOutputs(),
) -> ComponentSpec:
    """Build a :class:`ComponentSpec` from a function's signature, type hints and docstring."""
    short = name or function.__name__
    doc = docstring_parser.parse(inspect.getdoc(function) or "")
    param_docs = {p.arg_name: " ".join((p.description or "").split()) for p in doc.params}
    hints = typing.get_type_hints(function)
    parameters = []
    for pname, sig in inspect.signature(function).parameters.items():
        if pname not in hints:
            raise TypeError(f"{category}.{short}: parameter {pname!r} needs a type annotation")
        annotation = hints[pname]
        base, optional = unwrap_optional(annotation)
        kind = "input" if base is InputPath else "output" if base is OutputPath else "param"
        required = sig.default is REQUIRED and not (kind == "output")
        default = None if sig.default is REQUIRED else sig.default
        if kind == "output" and default is None:
            default = pname
        parameters.append(
            Parameter(
                name=pname,
                kind=kind,
                type=type_name(annotation),
                description=param_docs.get(pname, ""),
                default=default,
                required=required and not optional,
                choices=choices(annotation),
                annotation=annotation,
            )
        )
    if data_parallel:
        kinds = {p.name: p.kind for p in parameters}
        if kinds.get("shard_tables") != "input" or kinds.get("shard_index") != "param":
            raise TypeError(
                f"{category}.{short}: data_parallel needs the input shard_tables and the parameter shard_index"
            )
        if next(p for p in parameters if p.name == "shard_index").default is not None:
            raise TypeError(  # absent (None) means every shard (core.sharding.spreads), on every engine and adapter
                f"{category}.{short}: data_parallel needs shard_index: int | None = None (absent: every shard)"
            )
    outputs = {p.name for p in parameters if p.kind == "output"}
    for shown in filter(None, (ui.confusion_matrix, ui.image_folder)):
        if shown not in outputs:
            raise TypeError(f"{category}.{short}: ui names {shown!r}, which is not one of its outputs")
    description = " ".join(filter(None, [doc.short_description, doc.long_description]))
    return ComponentSpec(
        name=f"{category}.{short}",
        category=category,
        description=" ".join(description.split()),
        summary=" ".join((doc.short_description or "").split()),
        function=function,
        parameters=tuple(parameters),
        resources=resources,
        image=image,
        operator=operator or operator_name(category, short),
        gate=gate,
        data_parallel=data_parallel,
        ui=ui,
    )


def component(
    category: str,
    *,
    name: str | None = None,
    cpu: str = "1",
    memory: str = "2Gi",
    gpus: int = 0,
    image: str = DEFAULT_IMAGE,
    operator: str | None = None,
    gate: bool = False,
    data_parallel: bool = False,
    ui: UiOutputs = UiOutputs(),
) -> Callable[[Callable], Callable]:
    """Declare a function as a component; the spec is attached as ``function.spec``.

    Parameters annotated :class:`InputPath` are input artifacts (URIs staged to local paths),
    :class:`OutputPath` ones are outputs (the default value is the file or folder name written).
    The function may return a dict of small values (metrics) that travel with the output URIs.
    ``data_parallel``: the component can run once per shard of a cohort (its parameters ``shard_tables``
    and ``shard_index``; see :mod:`claimed_airflow.core.sharding`). ``ui``: what a run shows beside its URIs
    (:class:`UiOutputs`).
    """

    def decorate(function: Callable) -> Callable:
        function.spec = derive_spec(
            function,
            category=category,
            name=name,
            resources=Resources(cpu=cpu, memory=memory, gpus=gpus),
            image=image,
            operator=operator,
            gate=gate,
            data_parallel=data_parallel,
            ui=ui,
        )
        return function

    return decorate
