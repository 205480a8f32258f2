"""Engines: where a claimed operator runs its component. One small module per engine (a strategy).

Each engine module has ``execute(task, context) -> dict`` returning the component's result (output URIs,
small values, ``manifest``) and ``kill(task)``; ``task`` is an :class:`EngineTask`, everything the engine
may read (never the operator). Engine modules import their provider (cncf.kubernetes, apache.spark)
inside ``execute`` only, so parsing a DAG stays cheap.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import timedelta
from types import ModuleType
from typing import Any

from claimed_airflow.core.component import ComponentSpec
from claimed_airflow.core.options import KubernetesOptions, SparkOptions
from claimed_airflow.core.settings import USE_CONFIGURED, setting
from claimed_airflow.core.storage import Scope

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "USE_CONFIGURED",
    "EngineTask",
    "load",
    "resolve",
]

ENGINES = ("local", "kubernetes", "spark")
DEFAULT_ENGINE = "local"


@dataclass
class EngineTask:
    """One run of a task as an engine sees it: the component, its rendered arguments, where the outputs go
    and the task's typed options (built by the operator; no Airflow object in it)."""

    task_id: str
    spec: ComponentSpec
    arguments: dict[str, Any]  # rendered; unset ones left out (the component's defaults apply)
    root: str
    scope: Scope
    cache: bool = False
    deferrable: bool = False
    kubernetes: KubernetesOptions = field(default_factory=KubernetesOptions)
    spark: SparkOptions = field(default_factory=SparkOptions)
    retries: int = 0
    timeout: timedelta | None = None  # Airflow's execution_timeout
    started: Any = field(default=None, compare=False)  # what the engine started (a provider's operator), for kill


def resolve(engine: str | None) -> str:
    """The engine of a task: its ``engine`` argument, else the ``engine`` setting (see core.settings), else local."""
    return str(setting("engine", DEFAULT_ENGINE, value=(engine or "").strip())).strip()


def load(engine: str) -> ModuleType:
    if engine not in ENGINES:
        raise ValueError(f"engine: {engine!r} is not available; choose one of {', '.join(ENGINES)}")
    return importlib.import_module(f"{__name__}.{engine}")
