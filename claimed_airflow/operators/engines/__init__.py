"""Engines: where a claimed operator runs its component. One class per engine (a strategy), registered below.

Every engine implements :class:`~claimed_airflow.operators.engines.protocol.Engine`: ``run(task, context)``
returns the component's result (output URIs, small values, ``manifest``), ``resume`` continues after the
triggerer, ``kill(task)`` stops what ``run`` started, ``defers`` says whether a deferrable task waits in the
triggerer. ``task`` is an :class:`EngineTask`, everything the engine may read (never the operator). Engines
import their provider (cncf.kubernetes, apache.spark) when they run only, so parsing a DAG stays cheap.
"""

from __future__ import annotations

from claimed_airflow.core.settings import USE_CONFIGURED, setting
from claimed_airflow.operators.engines.kubernetes import KubernetesEngine
from claimed_airflow.operators.engines.local import LocalEngine
from claimed_airflow.operators.engines.protocol import Defer, Engine, EngineTask
from claimed_airflow.operators.engines.spark import SparkEngine

__all__ = ["ENGINES", "USE_CONFIGURED", "Defer", "Engine", "EngineTask", "load", "resolve"]

ENGINES: dict[str, type[Engine]] = {engine.name: engine for engine in (LocalEngine, KubernetesEngine, SparkEngine)}


def resolve(engine: str | None) -> str:
    """The engine of a task: its ``engine`` argument, else the ``engine`` setting (see core.settings)."""
    return str(setting("engine", value=(engine or "").strip())).strip()


def load(engine: str) -> Engine:
    """The engine named ``engine``; a clear error naming the choices for any other name."""
    if engine not in ENGINES:
        raise ValueError(f"engine: {engine!r} is not available; choose one of {', '.join(ENGINES)}")
    return ENGINES[engine]()
