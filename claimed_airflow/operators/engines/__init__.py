"""Engines: where a claimed operator runs its component. One small module per engine (a strategy).

Each engine module has ``execute(operator, context, spec, root, scope) -> dict`` returning the
component's result (output URIs, small values, ``manifest``). Engine modules import their provider
(cncf.kubernetes, apache.spark) inside ``execute`` only, so parsing a DAG stays cheap.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from claimed_airflow.core.settings import USE_CONFIGURED, json_setting, setting

__all__ = ["DEFAULT_ENGINE", "ENGINES", "USE_CONFIGURED", "json_setting", "load", "resolve", "setting"]

ENGINES = ("local", "kubernetes", "spark")
DEFAULT_ENGINE = "local"


def resolve(engine: str | None) -> str:
    """The engine of a task: its ``engine`` argument, else the ``engine`` setting (see core.settings), else local."""
    return str(setting("engine", DEFAULT_ENGINE, value=(engine or "").strip())).strip()


def load(engine: str) -> ModuleType:
    if engine not in ENGINES:
        raise ValueError(f"engine: {engine!r} is not available; choose one of {', '.join(ENGINES)}")
    return importlib.import_module(f"{__name__}.{engine}")
