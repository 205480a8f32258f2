"""Group fairness of a classifier's predictions with AIF360: five metrics, each with a verdict."""

from __future__ import annotations

import json
import math
from typing import Any

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.tables import require_columns

#: Fair ranges (inclusive) of the five metrics, as used by the AIF360 interactive demo and guidance:
#: differences within +-0.1 of 0, disparate impact within the four-fifths rule [0.8, 1.25]; the Theil
#: index (0 = every individual treated alike) has no published bound, we flag values above 0.25.
FAIR_RANGES: dict[str, tuple[float, float]] = {
    "statistical_parity_difference": (-0.1, 0.1),
    "disparate_impact": (0.8, 1.25),
    "equal_opportunity_difference": (-0.1, 0.1),
    "average_odds_difference": (-0.1, 0.1),
    "theil_index": (0.0, 0.25),
}
METRICS = tuple(FAIR_RANGES)


def group_mask(table, column: str, spec: Any, *, param: str):
    """Boolean Series: rows of ``table`` in the group ``spec``.

    ``spec`` is a list of values (compared as text, e.g. ``["M"]``) or a boolean expression over the
    table's columns (``"age > 25"``, ``"PatientSex == 'M'"``); rows with a missing value are never in it.
    """
    import numpy as np
    import pandas as pd

    from claimed_airflow.core.expressions import evaluate

    present = table[column].notna()
    if isinstance(spec, (list, tuple)):
        mask = table[column].astype(str).isin([str(v) for v in spec])
    elif isinstance(spec, str):
        mask = evaluate(spec, {c: table[c] for c in table.columns if isinstance(c, str)}, param=param)
        if np.isscalar(mask):
            raise ClaimedError(f"{param}: {spec!r} does not depend on the table's columns")
        mask = pd.Series(np.asarray(mask, dtype=bool), index=table.index)
    else:
        raise ClaimedError(f"{param}: expected a list of values or an expression for {column!r}, got {spec!r}")
    return mask & present


def binary(values, favorable: str):
    """1 where ``values`` equals the favorable label (compared as text, 1 == 1.0), else 0."""
    import numpy as np

    def text(value) -> str:
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    wanted = text(favorable if not isinstance(favorable, str) else _number_or_text(favorable))
    return np.array([1.0 if text(_number_or_text(v)) == wanted else 0.0 for v in values])


def _number_or_text(value):
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    return value


def import_aif360_metrics():
    """(BinaryLabelDataset, ClassificationMetric) of AIF360, without TensorFlow.

    ``aif360.metrics`` imports a module of ``aif360.algorithms.inprocessing``, whose package ``__init__``
    imports every in-processing algorithm, AdversarialDebiasing with TensorFlow among them: 11.6 s of CPU
    for the import here, 6.0 s without that ``__init__``. The package is entered here without running it
    (its submodules import from its folder as usual), then forgotten, so a later import of it (e.g.
    ``train.fairness_mitigation``'s AdversarialDebiasing) runs it as usual.
    """
    import importlib.util
    import sys

    package = "aif360.algorithms.inprocessing"
    entered = package not in sys.modules
    if entered:
        sys.modules[package] = importlib.util.module_from_spec(importlib.util.find_spec(package))
    try:
        from aif360.datasets import BinaryLabelDataset
        from aif360.metrics import ClassificationMetric
    finally:
        if entered:
            del sys.modules[package]
    return BinaryLabelDataset, ClassificationMetric


def fairness_metrics(truth, predicted, privileged, *, ranges=None) -> dict:
    """The five AIF360 metrics of binary ``truth``/``predicted`` (1 = favorable) for a 0/1 ``privileged``.

    Returns ``{metric: {"value", "fair_range", "verdict"}}`` plus ``biased`` (how many are out of range)
    and the group sizes; a metric that cannot be computed (an empty group) has value None, verdict n/a.
    """
    import warnings

    import numpy as np
    import pandas as pd

    BinaryLabelDataset, ClassificationMetric = import_aif360_metrics()
    ranges = {**FAIR_RANGES, **(ranges or {})}
    frame = pd.DataFrame(
        {"label": np.asarray(truth, float), "group": np.asarray(privileged, float)},
    )
    true_ds = BinaryLabelDataset(
        df=frame, label_names=["label"], protected_attribute_names=["group"], favorable_label=1.0, unfavorable_label=0.0
    )
    pred_ds = true_ds.copy(deepcopy=True)
    pred_ds.labels = np.asarray(predicted, float).reshape(-1, 1)
    metric = ClassificationMetric(
        true_ds, pred_ds, unprivileged_groups=[{"group": 0.0}], privileged_groups=[{"group": 1.0}]
    )
    result: dict[str, Any] = {}
    for name in METRICS:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                value = float(getattr(metric, name)())
            except (ZeroDivisionError, ValueError):
                value = math.nan
        low, high = ranges[name]
        if not math.isfinite(value):
            result[name] = {"value": None, "fair_range": [low, high], "verdict": "n/a"}
        else:
            result[name] = {
                "value": value,
                "fair_range": [low, high],
                "verdict": "fair" if low <= value <= high else "biased",
            }
    result["biased"] = sum(1 for name in METRICS if result[name]["verdict"] == "biased")
    result["privileged_count"] = int((np.asarray(privileged) == 1).sum())
    result["unprivileged_count"] = int((np.asarray(privileged) == 0).sum())
    return result


def measure(table, *, label_column, prediction_column, favorable_label, protected, unprivileged=None, ranges=None):
    """Metrics per protected attribute of a predictions table (see :func:`metric.fairness`)."""
    import numpy as np

    require_columns(table, [label_column, prediction_column], param="predictions")
    require_columns(table, list(protected), param="protected")
    unprivileged = unprivileged or {}
    require_columns(table, list(unprivileged), param="unprivileged")
    report = {}
    for column, spec in protected.items():
        privileged = group_mask(table, column, spec, param=f"protected[{column}]")
        if column in unprivileged:
            other = group_mask(table, column, unprivileged[column], param=f"unprivileged[{column}]") & ~privileged
        else:
            other = table[column].notna() & ~privileged
        rows = (privileged | other).to_numpy()
        if rows.sum() == 0:
            raise ClaimedError(f"protected: column {column!r} has no value in any row")
        part = table[rows]
        report[column] = fairness_metrics(
            binary(part[label_column], favorable_label),
            binary(part[prediction_column], favorable_label),
            privileged.to_numpy()[rows].astype(float),
            ranges=ranges,
        )
        report[column]["privileged"] = spec
        report[column]["missing"] = int((~rows).sum())
        report[column]["accuracy"] = float(
            np.mean(binary(part[label_column], favorable_label) == binary(part[prediction_column], favorable_label))
        )
    return report


@component("metric")
def fairness(
    predictions: InputPath,
    protected: dict,
    favorable_label: str,
    label_column: str = "label",
    prediction_column: str = "prediction",
    unprivileged: dict | None = None,
    fair_ranges: dict | None = None,
    metrics: OutputPath = "fairness.json",
    plot: OutputPath = "fairness.png",
) -> dict:
    """Measure group fairness of predictions with AIF360 for one or more protected attributes.

    For each protected column: statistical parity difference, disparate impact, equal opportunity
    difference, average odds difference and Theil index, each with its fair range and a verdict
    (``fair``, ``biased``, or ``n/a`` when a group is empty). Rows without a value in the protected
    column are left out of that attribute's metrics (and counted as ``missing``).

    :param predictions: Table with the true label, the predicted label and the protected columns.
    :param protected: Privileged group per protected column: a list of values, e.g.
        ``{"PatientSex": ["M"]}``, or an expression over the columns, e.g. ``{"age": "age > 25"}``.
    :param favorable_label: The label value that is the favorable outcome (e.g. ``1`` or ``No Finding``).
    :param label_column: Column with the true label.
    :param prediction_column: Column with the predicted label.
    :param unprivileged: Optional unprivileged group per column (same forms as ``protected``); by
        default every other row with a value.
    :param fair_ranges: Optional ``{"metric": [low, high]}`` overriding the default fair ranges
        (differences +-0.1, disparate impact 0.8 to 1.25, Theil index up to 0.25).
    :param metrics: JSON: per protected column the five metrics with value, fair range and verdict,
        the number of biased metrics, group sizes and rows missing; plus ``biased`` in total.
    :param plot: PNG bar chart of the metrics per protected column with the fair ranges shaded.
    """
    from claimed_airflow.core.tables import read_table

    if not protected:
        raise ClaimedError("protected: give at least one protected column and its privileged group")
    ranges = _ranges(fair_ranges)
    table = read_table(predictions, name="predictions")
    report = measure(
        table,
        label_column=label_column,
        prediction_column=prediction_column,
        favorable_label=favorable_label,
        protected=protected,
        unprivileged=unprivileged,
        ranges=ranges,
    )
    summary = {"biased": sum(r["biased"] for r in report.values()), "attributes": report}
    with open(metrics, "w") as handle:
        json.dump(summary, handle, indent=2)
    plot_metrics({name: report[name] for name in report}, plot, title="fairness")
    values: dict[str, Any] = {"biased": summary["biased"]}
    for column, result in report.items():
        values[f"{column}_biased"] = result["biased"]
    return values


def _ranges(fair_ranges: dict | None) -> dict:
    ranges = {}
    for name, bounds in (fair_ranges or {}).items():
        if name not in FAIR_RANGES:
            raise ClaimedError(f"fair_ranges: unknown metric {name!r} (known: {', '.join(METRICS)})")
        if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
            raise ClaimedError(f"fair_ranges: {name} needs [low, high], got {bounds!r}")
        ranges[name] = (float(bounds[0]), float(bounds[1]))
    return ranges


def plot_metrics(groups: dict[str, dict], path: str, *, title: str) -> None:
    """Grouped bar chart: one panel per metric, one bar per group (e.g. attribute or model)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(groups)
    figure, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.4))
    for axis, metric in zip(axes, METRICS, strict=True):
        values = [groups[n][metric]["value"] for n in names]
        low, high = next(iter(groups.values()))[metric]["fair_range"]
        axis.axhspan(low, high, color="tab:green", alpha=0.15)
        colors = ["tab:blue" if groups[n][metric]["verdict"] == "fair" else "tab:red" for n in names]
        axis.bar(range(len(names)), [0.0 if v is None else v for v in values], color=colors)
        axis.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        axis.set_title(metric.replace("_", " "), fontsize=9)
        axis.axhline(1.0 if metric == "disparate_impact" else 0.0, color="black", linewidth=0.8)
    figure.suptitle(f"{title} (green: fair range, red: biased)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
