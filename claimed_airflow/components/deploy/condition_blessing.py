"""The blessing gate: a boolean condition over metric values decides whether the model is deployed."""

from __future__ import annotations

import json

from claimed_airflow.core import InputPath, component
from claimed_airflow.core.errors import ClaimedError


def flatten(data: dict, prefix: str = "") -> dict:
    """Nested JSON objects to ``a_b`` names with scalar values (lists are left out)."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}_"))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            flat[name] = value
    return flat


@component("deploy", gate=True, operator="ConditionBlessingOperator")
def condition_blessing(metrics: InputPath, condition: str = "accuracy >= 0.5") -> dict:
    """Evaluate ``condition`` over the values of a metrics JSON file; false skips downstream tasks.

    In Airflow the tasks after the gate are skipped (not failed) when the model is not blessed.

    :param metrics: JSON file of metric values (nested objects are flattened to ``outer_inner``).
    :param condition: Boolean expression, e.g. ``accuracy >= 0.8 and count >= 100``.
    """
    from claimed_airflow.core.expressions import evaluate

    try:
        with open(metrics) as handle:
            values = flatten(json.load(handle))
    except json.JSONDecodeError as exc:
        raise ClaimedError(f"metrics: not valid JSON: {exc}") from None
    blessed = evaluate(condition, values, param="condition")
    if not isinstance(blessed, bool):
        raise ClaimedError(f"condition: {condition!r} gave {blessed!r}, expected true or false")
    return {"blessed": blessed}
