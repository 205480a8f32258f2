"""The one contract of engines: what the claimed operator asks of each (run, resume, kill, whether it defers).

An engine never sees the operator: it gets an :class:`EngineTask` (the rendered arguments and typed options)
and the Airflow context. A deferrable wait raises :class:`Defer`; the operator defers with the engine's name and
``state`` in the defer kwargs and, when the trigger fires, calls the same engine's ``resume`` (the operator keeps
no resume state of its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Protocol, runtime_checkable

from claimed_airflow.core.component import ComponentSpec
from claimed_airflow.core.options import KubernetesOptions, SparkOptions
from claimed_airflow.core.storage import Scope


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
    started: Any = field(default=None, compare=False)  # what the engine started (a pod runner, a hook), for kill


class Defer(BaseException):  # noqa: N818 - like Airflow's TaskDeferred: not an error, no `except Exception` catches it
    """Raised by ``Engine.run``/``resume``: wait in Airflow's triggerer until ``trigger`` fires, then the engine's
    ``resume(task, context, state, event)``. ``state`` travels in the defer kwargs, so it must be JSON."""

    def __init__(self, trigger: Any, state: dict[str, Any], timeout: timedelta | None = None) -> None:
        super().__init__(trigger)
        self.trigger = trigger
        self.state = state
        self.timeout = timeout


@runtime_checkable
class Engine(Protocol):
    """Where a claimed task runs its component (``engines.ENGINES`` registers each by name)."""

    name: ClassVar[str]
    defers: ClassVar[bool]  # a deferrable task of this engine may wait in the triggerer (its run raises Defer)

    def run(self, task: EngineTask, context: Any) -> dict[str, Any]:
        """Run the component; its result: output URIs, small values and ``manifest``."""
        ...

    def resume(self, task: EngineTask, context: Any, state: dict[str, Any], event: Any) -> dict[str, Any]:
        """Continue a run that raised :class:`Defer` with ``state``, given the trigger's ``event``."""
        ...

    def kill(self, task: EngineTask) -> None:
        """The task is killed: stop what ``run`` started."""
        ...
