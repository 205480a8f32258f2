"""Settings of claimed-airflow: every option, and the one order in which a value is looked up.

A setting ``<option>`` takes the first value found (empty values count as unset):

1. the task argument (an operator's argument or a DAG param, passed as ``value``), unless it is ``"default"``;
2. the Airflow Variable ``claimed_<option>`` (read at task run time; options read while DAGs are parsed,
   such as ``components``, skip it, and so does a process that cannot read Variables);
3. the Airflow option ``[claimed] <option>`` (``airflow.cfg``, or ``AIRFLOW__CLAIMED__<OPTION>``);
4. the environment variable ``CLAIMED_<OPTION>``;
5. the option's declared default (:attr:`Option.default`: the one place it is written; a caller may ask for
   ``None`` instead, to tell an unset option from its default).

A setting never imports Airflow (seconds) on its own: in a process that has not imported it (the
``claimed-airflow`` command, a component's pod, a KFP step) step 2 is skipped and step 3 reads only
``AIRFLOW__CLAIMED__<OPTION>``. Every option is declared in :data:`OPTIONS`, which is also the provider's
``[claimed]`` config section (``get_provider_info()``) and the settings reference.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from claimed_airflow.core.errors import ParameterError

# Task argument values that mean "use the configured setting".
USE_CONFIGURED = ("", "default", "configured")
DECLARED: Any = object()  # setting()'s default: the option's declared default


@dataclass(frozen=True)
class Option:
    """A declared ``[claimed]`` option: what the provider config and the settings reference show."""

    description: str
    type: str = "string"
    example: str | None = None
    default: str | None = None  # what setting() answers when the option is not set anywhere
    variable: bool = True  # False: read while DAGs are parsed, so no Airflow Variable (a database call per parse)
    env: str | None = None  # the environment variable, when not CLAIMED_<NAME>

    @property
    def config(self) -> dict[str, Any]:
        """The option as Airflow's provider config declares it: with no default, since Airflow would answer an
        unset ``[claimed]`` option with it and hide the environment variable (step 4); the default is in the text."""
        described = f"{self.description} Default: {self.default}." if self.default is not None else self.description
        return {
            "description": described,
            "version_added": "0.1.0",
            "type": self.type,
            "example": self.example,
            "default": None,
        }


_POD = "engine=kubernetes: "
OPTIONS: dict[str, Option] = {
    "output_root": Option(
        "Root URI (local folder, file:// or s3://) under which tasks write their outputs as "
        "<root>/<dag_id>/<run_id>/<task_id>/<output> (default $AIRFLOW_HOME/claimed-artifacts in Airflow, "
        "./claimed-artifacts outside).",
        example="s3://bucket/claimed",
    ),
    "cache": Option(
        "Default of the claimed operators' cache option: reuse outputs of an earlier run with the same "
        "component version, parameters and input contents.",
        type="boolean",
        example="True",
        default="False",
    ),
    "engine": Option(
        "Default engine of claimed operators: local, kubernetes or spark.", example="kubernetes", default="local"
    ),
    "gpu_queue": Option(
        "Executor queue of the tasks of GPU components (train.mobilenet_v2, ...) that set no queue themselves: "
        "with the CeleryExecutor, a queue only GPU workers serve (airflow celery worker --queues gpu); unset: "
        "[operators] default_queue. Read while DAGs are parsed (no Variable).",
        example="gpu",
        variable=False,
    ),
    "components": Option(
        "Importable modules of your own components, comma separated, registered next to the library's "
        "(read while DAGs are parsed: no Variable; environment CLAIMED_AIRFLOW_COMPONENTS).",
        example="my_package.components,my_package.more_components",
        variable=False,
        env="CLAIMED_AIRFLOW_COMPONENTS",
    ),
    "image": Option(
        _POD + "component image (default ghcr.io/claimed-framework/claimed-airflow:<version>).",
        example="registry.example.com/claimed-airflow:0.1.0",
    ),
    "gpu_image": Option(
        _POD + "image of GPU components (default <image>:<version>-gpu).",
        example="registry.example.com/claimed-airflow:0.1.0-gpu",
    ),
    "kubernetes_namespace": Option(_POD + "namespace of the pods (default: the connection's).", example="claimed"),
    "node_selector": Option(_POD + "node selector (JSON object) of CPU components.", example='{"pool": "cpu"}'),
    "gpu_node_selector": Option(
        _POD + "node selector (JSON object) of GPU components.", example='{"nvidia.com/gpu.present": "true"}'
    ),
    "tolerations": Option(
        _POD + "tolerations (JSON list) of CPU components.",
        example='[{"key": "pool", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}]',
    ),
    "gpu_tolerations": Option(
        _POD + "tolerations (JSON list) of GPU components (default: tolerate nvidia.com/gpu taints).",
        example='[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]',
    ),
    "image_pull_secrets": Option(
        _POD + "names of the image pull secrets of the pods, comma separated.", example="registry-credentials"
    ),
    "spark_master": Option(
        "Spark master of Spark components run in-process (engine local or kubernetes); when set, backend auto "
        "picks Spark.",
        example="spark://cluster:7077",
        default="local[*]",
    ),
    "spark_auto_bytes": Option(
        "backend auto: inputs larger than this many bytes run on Spark, smaller ones in-process.",
        type="integer",
        example="1073741824",
        default="268435456",
    ),
    "spark_log_level": Option("Log level of in-process Spark sessions.", example="INFO", default="WARN"),
}


def env_name(name: str) -> str:
    """The environment variable of setting ``name``: ``CLAIMED_<NAME>`` unless the option names another."""
    option = OPTIONS.get(name)
    return (option.env if option and option.env else None) or f"CLAIMED_{name.upper()}"


def _unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in USE_CONFIGURED)


def _variable(name: str) -> Any:
    from claimed_airflow.version_compat import Variable

    try:
        return Variable.get(f"claimed_{name}", None)  # positional: the keyword is default_var on 2.11, default on 3.x
    except ImportError:  # Airflow 3.0/3.1 outside a task: only tasks read Variables
        return None


def _config(name: str, airflow: bool) -> Any:
    if not airflow:  # what Airflow's config would read from the environment, without importing Airflow
        return os.environ.get(f"AIRFLOW__CLAIMED__{name.upper()}")
    from claimed_airflow.version_compat import conf

    return conf.get("claimed", name, fallback=None)


def setting(name: str, default: Any = DECLARED, *, value: Any = None) -> Any:
    """Setting ``name``: ``value`` (the task argument), Variable ``claimed_<name>``, ``[claimed] <name>``,
    ``$CLAIMED_<NAME>``, else the option's declared default (the order of this module's docstring).

    ``default`` is for options that declare none (a caller's fallback), or ``None`` to learn whether the
    option is set; repeating a declared default elsewhere is refused (one place)."""
    option = OPTIONS.get(name)
    if option is None:
        raise ValueError(f"claimed setting {name!r} is not declared in claimed_airflow.core.settings.OPTIONS")
    if default is DECLARED:
        default = option.default
    elif default is not None and option.default is not None:
        raise ValueError(f"claimed setting {name!r} declares its default ({option.default!r}); do not pass another")
    if not _unset(value):
        return value
    airflow = "airflow" in sys.modules  # a process running Airflow; never import it (seconds) for a setting
    found = _variable(name) if airflow and option.variable else None
    if found in (None, ""):
        found = _config(name, airflow)
    if found in (None, ""):
        found = os.environ.get(env_name(name))
    return default if found in (None, "") else found


def parse_json(name: str, found: Any, default: Any = None) -> Any:
    """Setting ``name``'s JSON text ``found`` parsed (unset: ``default``; values that are not text pass through)."""
    if found in (None, ""):
        return default
    if isinstance(found, str):
        try:
            return json.loads(found)
        except json.JSONDecodeError:
            raise ParameterError(f"claimed setting {name}: expected JSON, got {found!r}") from None
    return found


def json_setting(name: str, default: Any = None, *, value: Any = None) -> Any:
    """A setting holding JSON (a node selector, a list of tolerations)."""
    return parse_json(name, setting(name, None, value=value), default)


def flag_setting(name: str, *, value: Any = None) -> bool:
    """A boolean setting (``true``/``false``, ``1``/``0``, ``yes``/``no``); unset: its declared default, else false."""
    from claimed_airflow.core.types import coerce

    found = setting(name, value=value)
    return False if found is None else bool(coerce(name, found, bool))


def list_setting(name: str, *, value: Any = None) -> list[str]:
    """A comma separated setting as a list of its non-empty items (a list ``value`` passes through)."""
    found = setting(name, None, value=value)
    if found is None:
        return []
    items = found if isinstance(found, (list, tuple)) else str(found).split(",")
    return [str(item).strip() for item in items if str(item).strip()]
