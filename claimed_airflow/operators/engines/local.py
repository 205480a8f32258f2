"""Engine ``local``: run the component in the Airflow worker process."""

from __future__ import annotations

from typing import Any


def execute(operator, context: Any, spec, root: str, scope) -> dict[str, Any]:
    from claimed_airflow.core.runner import run

    return run(spec, operator.component_arguments(), root=root, scope=scope, cache=operator._cache_enabled())
