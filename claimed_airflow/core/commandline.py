"""The command line every remote engine runs: ``claimed-airflow run <component> --param value ...``.

The same argument list is the container command of a Kubernetes pod, the application arguments of a
``spark-submit`` and what a user types; ``claimed_airflow.cli`` parses it back into the same values.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from claimed_airflow.core.component import ComponentSpec
from claimed_airflow.core.storage import Scope


def format_value(value: Any) -> str:
    """A parameter value as the CLI parses it back: booleans as true/false, lists and dicts as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"), default=str)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):  # a mapped task's XComs (lazy)
        return json.dumps(list(value), separators=(",", ":"), default=str)
    return str(value)


def parameter_args(spec: ComponentSpec, values: dict[str, Any]) -> list[str]:
    """``--name=value`` items in the order of the component's signature; None values are left out.

    One token per parameter, so a value that starts with a dash (``-1``, ``--x``) stays a value.
    """
    return [f"--{p.name}={format_value(values[p.name])}" for p in spec.arguments if values.get(p.name) is not None]


def scope_args(root: str, scope: Scope, xcom_file: str | None = None) -> list[str]:
    """Where the outputs go (``--output-root`` and the run scope) and where the result JSON is written."""
    args = ["--output-root", root, "--dag-id", scope.dag_id, "--run-id", scope.run_id, "--task-id", scope.task_id]
    if scope.map_index >= 0:
        args += ["--map-index", str(scope.map_index)]
    if xcom_file:
        args += ["--xcom-file", xcom_file]
    return args


def run_args(
    spec: ComponentSpec,
    values: dict[str, Any],
    *,
    root: str,
    scope: Scope,
    xcom_file: str | None = None,
    cache: bool = False,
) -> list[str]:
    """The arguments after ``claimed-airflow``: ``run <component> --param value ... --output-root ...``
    (``--cache``: reuse the outputs of an earlier run with the same inputs, see the runner)."""
    args = ["run", spec.name, *parameter_args(spec, values), *scope_args(root, scope, xcom_file)]
    return [*args, "--cache"] if cache else args
