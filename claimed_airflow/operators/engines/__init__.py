"""Engines: where a claimed operator runs its component. One small module per engine (a strategy).

Each engine module has ``execute(operator, context, spec, root, scope) -> dict`` returning the
component's result (output URIs, small values, ``manifest``). Engine modules import their provider
(cncf.kubernetes, apache.spark) inside ``execute`` only, so parsing a DAG stays cheap.
"""

from __future__ import annotations

import importlib
import json
from types import ModuleType
from typing import Any

ENGINES = ("local", "kubernetes", "spark")
DEFAULT_ENGINE = "local"
# Values of the ``engine`` argument (or DAG param) that defer to the configuration.
USE_CONFIGURED = ("", "default", "configured")


def setting(name: str, default: Any = None) -> Any:
    """A claimed setting at run time: Airflow Variable ``claimed_<name>``, else ``[claimed] <name>``, else default.

    Only called while a task runs (never at DAG parse time: a Variable lookup there costs a database
    or API call per parse).
    """
    from claimed_airflow.version_compat import Variable, conf

    try:
        value = Variable.get(f"claimed_{name}", None)  # positional: the keyword is default_var on 2.11, default on 3.x
    except ImportError:  # Airflow 3.0/3.1 outside a task (e.g. building a pod in a test): only tasks read Variables
        value = None
    if value in (None, ""):
        value = conf.get("claimed", name, fallback=None)
    return default if value in (None, "") else value


def json_setting(name: str, default: Any = None) -> Any:
    """A setting holding JSON (a node selector, a list of tolerations)."""
    value = setting(name)
    if value is None:
        return default
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"claimed setting {name}: expected JSON, got {value!r}") from None
    return value


def resolve(engine: str | None) -> str:
    """The engine of a task: its ``engine`` argument, else Variable ``claimed_engine``, ``[claimed] engine``, local."""
    chosen = (engine or "").strip()
    if chosen.lower() in USE_CONFIGURED:
        chosen = str(setting("engine", DEFAULT_ENGINE)).strip()
    return chosen


def load(engine: str) -> ModuleType:
    if engine not in ENGINES:
        raise ValueError(f"engine: {engine!r} is not available; choose one of {', '.join(ENGINES)}")
    return importlib.import_module(f"{__name__}.{engine}")
