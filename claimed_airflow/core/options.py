"""Engine options of a task, typed and checked: where and how the kubernetes and spark engines run it.

A claimed operator takes them as ``kubernetes=KubernetesOptions(...)`` (or a dict) and
``spark=SparkOptions(...)``, apart from the component's own parameters (``KServeDeployOperator(cpu=...)``
is the predictor's CPU, ``kubernetes={"cpu": ...}`` the pod's).
Unset options (None) are left to the component's resources and the claimed settings. The kubernetes
engine, the KFP export (:func:`claimed_airflow.core.pod.task_pod`) and the spark engine read them.
Nothing here imports Airflow.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from claimed_airflow.core.errors import ParameterError

TOLERATION_KEYS = ("key", "operator", "value", "effect", "toleration_seconds")
_QUANTITY = re.compile(r"^\d+(\.\d+)?([eE][-+]?\d+|[a-zA-Z]{1,2})?$")  # 2, 0.5, 500m, 8Gi, 1G, 1e9


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ParameterError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _quantity(where: str, value: Any, example: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not _QUANTITY.match(str(value)):
        raise ParameterError(f"{where}: expected a Kubernetes quantity such as {example!r}, got {value!r}")
    return str(value)


def _mapping(where: str, value: Any) -> dict:
    if not isinstance(value, Mapping):
        raise ParameterError(f"{where}: expected a dict, got {value!r}")
    return dict(value)


def _names(where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ParameterError(f"{where}: expected a list of names, got {value!r}")
    return tuple(_text(where, item) for item in value)


@dataclass(frozen=True)
class SecretRef:
    """A Kubernetes secret given to the pod: one key as ``env``, every key as environment, or a volume."""

    secret: str
    env: str | None = None
    key: str | None = None
    mount: str | None = None

    @property
    def kind(self) -> str:
        """``env`` (one key), ``env_all`` (every key, envFrom) or ``volume`` (files under ``mount``)."""
        return "volume" if self.mount else "env" if self.env else "env_all"


def parse_secrets(entries: list[dict] | None, where: str = "secrets") -> tuple[SecretRef, ...]:
    """``{"env": VAR, "secret": name, "key": key}``, ``{"secret": name}`` or ``{"secret": name, "mount": path}``."""
    found = []
    for entry in entries or []:
        if not isinstance(entry, dict) or "secret" not in entry:
            raise ParameterError(f"{where}: expected {{'secret': name, ...}}, got {entry!r}")
        unknown = set(entry) - {"secret", "env", "key", "mount"}
        if unknown:
            raise ParameterError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} in {entry!r}")
        if "env" in entry and "key" not in entry:
            raise ParameterError(f"{where}: {entry!r} names an env variable but no key of the secret")
        if "env" in entry and "mount" in entry:
            raise ParameterError(f"{where}: {entry!r} gives both env and mount; give one")
        found.append(SecretRef(entry["secret"], entry.get("env"), entry.get("key"), entry.get("mount")))
    return tuple(found)


def check_tolerations(items: Any, where: str = "tolerations") -> tuple[dict[str, Any], ...]:
    """Tolerations as dicts with the keys of a Kubernetes toleration; ``where`` names them in errors."""
    if not isinstance(items, (list, tuple)):
        raise ParameterError(f"{where}: expected a list of dicts, got {items!r}")
    checked = []
    for item in items:
        if not isinstance(item, dict) or set(item) - set(TOLERATION_KEYS):
            raise ParameterError(f"{where}: {item!r} is not a toleration (keys: {', '.join(TOLERATION_KEYS)})")
        checked.append(dict(item))
    return tuple(checked)


class _Options:
    """What the engine options have in common: the options set (not default)."""

    engine = ""

    def given(self) -> dict[str, Any]:
        """The options that differ from their defaults."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) != f.default}


@dataclass(frozen=True)
class KubernetesOptions(_Options):
    """How the kubernetes engine runs a task's pod (and what an exported KFP step asks for).

    :param image: Container image; default setting ``image`` (GPU tasks: ``gpu_image``), else the
        component's image tagged with the library version (``-gpu`` for GPU).
    :param namespace: Namespace of the pod; default setting ``kubernetes_namespace``.
    :param cpu: CPU request, e.g. ``"2"``; default from the component.
    :param memory: Memory request and limit, e.g. ``"8Gi"``; default from the component.
    :param gpus: ``nvidia.com/gpu`` limit; default from the component.
    :param node_selector: Node selector; default setting ``node_selector`` (GPU tasks: ``gpu_node_selector``).
    :param tolerations: Tolerations as dicts (key, operator, value, effect, toleration_seconds); GPU tasks
        default to tolerating the ``nvidia.com/gpu`` taint.
    :param image_pull_secrets: Names of image pull secrets; default setting ``image_pull_secrets``.
    :param secrets: Kubernetes secrets: ``{"env": VAR, "secret": name, "key": key}``, ``{"secret": name}``
        (every key as environment) or ``{"secret": name, "mount": path}``.
    :param env_vars: Extra environment variables of the pod.
    :param conn_id: Airflow connection of the cluster.
    :param pod_options: Further KubernetesPodOperator arguments (service_account_name, volumes, affinity, ...);
        they win over the ones above.
    """

    engine = "kubernetes"

    image: str | None = None
    namespace: str | None = None
    cpu: str | None = None
    memory: str | None = None
    gpus: int | None = None
    node_selector: dict[str, str] | None = None
    tolerations: tuple[dict[str, Any], ...] | None = None
    image_pull_secrets: tuple[str, ...] | None = None
    secrets: tuple[dict[str, str], ...] | None = None
    env_vars: dict[str, str] | None = None
    conn_id: str = "kubernetes_default"
    pod_options: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        checks = {
            "image": _text,
            "namespace": _text,
            "cpu": lambda where, value: _quantity(where, value, "2"),
            "memory": lambda where, value: _quantity(where, value, "8Gi"),
            "gpus": _gpus,
            "node_selector": lambda where, value: {str(k): str(v) for k, v in _mapping(where, value).items()},
            "tolerations": lambda where, value: check_tolerations(value, where),
            "image_pull_secrets": _names,
            "secrets": _secrets,
            "env_vars": lambda where, value: {str(k): str(v) for k, v in _mapping(where, value).items()},
            "conn_id": _text,
            "pod_options": _mapping,
        }
        for name, check in checks.items():
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, check(f"kubernetes.{name}", value))


def _gpus(where: str, value: Any) -> int:
    if isinstance(value, bool) or not str(value).isdigit():
        raise ParameterError(f"{where}: expected a whole number of GPUs (0 or more), got {value!r}")
    return int(value)


def _secrets(where: str, value: Any) -> tuple[dict[str, str], ...]:
    if isinstance(value, (str, Mapping)) or not isinstance(value, (list, tuple)):
        raise ParameterError(f"{where}: expected a list of {{'secret': name, ...}}, got {value!r}")
    parse_secrets(list(value), where)
    return tuple(dict(entry) for entry in value)


@dataclass(frozen=True)
class SparkOptions(_Options):
    """How the spark engine submits a task.

    :param conn_id: Airflow connection of the Spark master (``spark_default``: set its host to
        ``local[*]`` for one machine).
    :param conf: Extra ``--conf`` settings of spark-submit.
    """

    engine = "spark"

    conn_id: str = "spark_default"
    conf: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _text("spark.conn_id", self.conn_id)
        if self.conf is not None:
            conf = _mapping("spark.conf", self.conf)
            for key in conf:
                if not isinstance(key, str) or not key.startswith("spark."):
                    raise ParameterError(f"spark.conf: {key!r} is not a Spark setting (spark.*)")
            object.__setattr__(self, "conf", conf)


ENGINE_OPTIONS: dict[str, type[_Options]] = {"kubernetes": KubernetesOptions, "spark": SparkOptions}

# What a claimed operator has besides the component's parameters: its constructor arguments and attributes
# (tests/test_own_components.py checks this against ClaimedOperator). No component parameter can take these names.
OPERATOR_NAMES = frozenset(
    {
        *("component", "arguments", "engine", "output_root", "cache", "kubernetes", "spark", "deferrable"),
        *("component_fields", "gate", "claimed_result", "component_arguments", "engine_task", "engine_options"),
        *("execute_complete", "get_openlineage_facets_on_complete"),
    }
)


def reserved_names() -> frozenset[str]:
    """Names a component parameter cannot take, as a generated operator's argument would shadow them:
    :data:`OPERATOR_NAMES` and, where Airflow is installed, the arguments and attributes of its BaseOperator."""
    try:
        import inspect

        from claimed_airflow.version_compat import BaseOperator
    except ImportError:  # no Airflow: only the claimed operator's own names
        return OPERATOR_NAMES
    return OPERATOR_NAMES | set(dir(BaseOperator)) | set(inspect.signature(BaseOperator.__init__).parameters)


def given_options(cls: type[_Options], value: Any) -> dict[str, Any]:
    """The options set in ``value`` (an instance, a dict or None) as a plain dict; names checked, values not."""
    if value is None:
        return {}
    if isinstance(value, cls):
        return value.given()
    if not isinstance(value, Mapping):
        raise ParameterError(f"{cls.engine}: expected {cls.__name__}(...) or a dict, got {value!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise ParameterError(f"{cls.engine}: unknown option(s) {', '.join(unknown)}; expected: {', '.join(names)}")
    return dict(value)


def merge(task: Mapping[str, Any], defaults: Mapping[str, Any] = {}) -> dict[str, dict[str, Any]]:  # noqa: B006
    """The engine options of a task as plain dicts (what an operator keeps, so templates in them render):
    ``task`` (its ``kubernetes``/``spark`` options) over ``defaults`` (the same names from ``default_args``),
    option by option."""
    return {
        engine: {**given_options(cls, defaults.get(engine)), **given_options(cls, task.get(engine))}
        for engine, cls in ENGINE_OPTIONS.items()
    }


def fold(merged: Mapping[str, Any], skip: Callable[[Any], bool] | None = None) -> dict[str, _Options]:
    """The typed, checked options of :func:`merge`'s dicts; ``skip`` leaves out values not rendered yet
    (templates, checked when the task runs)."""
    folded = {}
    for engine, cls in ENGINE_OPTIONS.items():
        values = given_options(cls, merged.get(engine))
        folded[engine] = cls(**{k: v for k, v in values.items() if skip is None or not skip(v)})
    return folded
