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


@component("deploy", gate=True)
def condition_blessing(
    metrics: InputPath,
    condition: str = "accuracy >= 0.5",
    fairness: InputPath | None = None,
    robustness: InputPath | None = None,
) -> dict:
    """Evaluate ``condition`` over the values of metrics JSON files; false skips downstream tasks.

    In Airflow the tasks after the gate are skipped (not failed) when the model is not blessed. The
    values of ``metrics`` keep their names; those of the optional ``fairness`` and ``robustness`` files
    are prefixed, e.g. ``fairness_biased``, ``fairness_attributes_PatientSex_biased``,
    ``robustness_min_accuracy``, so one condition can weigh accuracy, fairness and robustness together.

    :param metrics: JSON file of metric values (nested objects are flattened to ``outer_inner``).
    :param condition: Boolean expression, e.g. ``accuracy >= 0.8 and fairness_biased == 0``.
    :param fairness: Optional JSON of ``metric.fairness``; its values get the prefix ``fairness_``.
    :param robustness: Optional JSON of ``metric.robustness``; its values get the prefix ``robustness_``.
    """
    from claimed_airflow.core.expressions import evaluate

    blessed = evaluate(condition, metric_values(metrics, fairness, robustness), param="condition")
    if not isinstance(blessed, bool):
        raise ClaimedError(f"condition: {condition!r} gave {blessed!r}, expected true or false")
    return {"blessed": blessed}


def metric_values(metrics: str, fairness: str | None = None, robustness: str | None = None) -> dict:
    """The values a blessing condition sees: ``metrics`` as they are, ``fairness_*`` and ``robustness_*``."""
    values = _read("metrics", metrics)
    for name, path in (("fairness", fairness), ("robustness", robustness)):
        if path is not None:
            values.update(flatten(_read(name, path), f"{name}_"))
    return values


def _read(name: str, path: str) -> dict:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ClaimedError(f"{name}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ClaimedError(f"{name}: expected a JSON object of metric values")
    return flatten(data)
