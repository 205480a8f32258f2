"""One engine contract: every engine is an ``Engine`` (run, resume, kill, defers) registered in ``engines.ENGINES``;
the operator asks nothing else of it and keeps no resume state (it travels in the defer kwargs)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from claimed_airflow.operators.engines import ENGINES, Defer, Engine, EngineTask, load

TRIGGER = SimpleNamespace(name="a trigger")


class Recording:
    """An engine that defers once, then finishes with what it was resumed with."""

    name: ClassVar[str] = "recording"
    defers: ClassVar[bool] = True
    calls: ClassVar[list] = []

    def run(self, task: EngineTask, context: Any) -> dict[str, Any]:
        self.calls.append(("run", task.task_id))
        raise Defer(TRIGGER, {"table": task.arguments["table"], "step": 1})

    def resume(self, task: EngineTask, context: Any, state: dict[str, Any], event: Any) -> dict[str, Any]:
        self.calls.append(("resume", state, event))
        return {"output": f"{state['table']}.out", "manifest": "s3://b/manifest.json"}

    def kill(self, task: EngineTask) -> None:
        self.calls.append(("kill", task.task_id))


def context() -> dict:
    ti = SimpleNamespace(dag_id="protocol", run_id="r1", task_id="rows", map_index=-1, try_number=1)
    return {"ti": ti, "run_id": "r1", "outlet_events": {}, "params": {}}


def test_every_engine_keeps_the_one_contract():
    assert set(ENGINES) == {"local", "kubernetes", "spark"}
    for name, cls in ENGINES.items():
        engine = load(name)
        assert isinstance(engine, Engine) and engine.name == name and isinstance(cls.defers, bool)
    assert (ENGINES["local"].defers, ENGINES["kubernetes"].defers, ENGINES["spark"].defers) == (True, True, False)
    with pytest.raises(ValueError, match="^engine: 'docker' is not available; choose one of local, kubernetes, spark$"):
        load("docker")


def test_the_operator_runs_defers_resumes_and_kills_any_registered_engine(monkeypatch):
    """No branch on the engine's identity: a new engine in the registry works; the resumed task is a fresh
    operator (as Airflow builds it) and continues on the engine it deferred on, from the defer kwargs alone."""
    from airflow.sdk.exceptions import TaskDeferred

    from claimed_airflow.operators import RowsFilterOperator

    monkeypatch.setitem(ENGINES, "recording", Recording)
    monkeypatch.setattr(Recording, "calls", [])
    operator = RowsFilterOperator(
        task_id="rows", table="s3://b/t.csv", condition="a > 1", engine="recording", deferrable=True
    )
    with pytest.raises(TaskDeferred) as caught:
        operator.execute(context())
    deferred = caught.value
    assert deferred.trigger is TRIGGER and deferred.method_name == "execute_complete"
    assert deferred.kwargs == {"engine": "recording", "state": {"table": "s3://b/t.csv", "step": 1}}
    operator.on_kill()  # stops what the engine started
    assert Recording.calls == [("run", "rows"), ("kill", "rows")]

    monkeypatch.setenv("AIRFLOW__CLAIMED__ENGINE", "local")  # the configuration changed while the task waited
    fresh = RowsFilterOperator(task_id="rows", table="s3://b/t.csv", condition="a > 1", deferrable=True)
    result = fresh.execute_complete(context(), event={"status": "done"}, **deferred.kwargs)
    assert result == {"output": "s3://b/t.csv.out", "manifest": "s3://b/manifest.json"}
    assert Recording.calls[-1] == ("resume", {"table": "s3://b/t.csv", "step": 1}, {"status": "done"})
