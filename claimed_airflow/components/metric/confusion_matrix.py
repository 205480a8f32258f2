"""Confusion matrix, accuracy and per-class precision/recall of a predictions table."""

from __future__ import annotations

import json

from claimed_airflow.core import InputPath, OutputPath, UiOutputs, component
from claimed_airflow.core.tables import require_columns


@component("metric", ui=UiOutputs(confusion_matrix="metrics"))
def confusion_matrix(
    predictions: InputPath,
    label_column: str = "label",
    prediction_column: str = "prediction",
    metrics: OutputPath = "metrics.json",
    plot: OutputPath = "confusion_matrix.png",
) -> dict:
    """Compute the confusion matrix of true vs. predicted labels, with accuracy and per-class scores.

    :param predictions: Table with a true-label and a predicted-label column.
    :param label_column: Column with the true label.
    :param prediction_column: Column with the predicted label.
    :param metrics: JSON: accuracy, count (images scored), classes, matrix (rows true, columns predicted),
        per-class precision and recall, and ``majority_accuracy``: the accuracy of always answering the
        most frequent true label (``majority_class``), the score a model must beat to have learned anything.
    :param plot: PNG heat map of the matrix.
    """
    import pandas as pd

    from claimed_airflow.core.tables import read_table

    table = read_table(predictions, name="predictions")
    require_columns(table, (label_column, prediction_column), param="predictions")
    truth, predicted = table[label_column].astype(str), table[prediction_column].astype(str)
    classes = sorted(set(truth) | set(predicted))
    matrix = pd.crosstab(truth, predicted).reindex(index=classes, columns=classes, fill_value=0)
    correct = int((truth == predicted).sum())
    counts = truth.value_counts()
    result = {
        "accuracy": correct / len(table) if len(table) else 0.0,
        "count": len(table),
        "majority_class": str(counts.index[0]) if len(counts) else None,
        "majority_accuracy": float(counts.iloc[0]) / len(table) if len(table) else 0.0,
        "classes": classes,
        "matrix": matrix.values.tolist(),
        "precision": {c: _ratio(matrix.at[c, c], matrix[c].sum()) for c in classes},
        "recall": {c: _ratio(matrix.at[c, c], matrix.loc[c].sum()) for c in classes},
    }
    with open(metrics, "w") as handle:
        json.dump(result, handle, indent=2)
    _plot(matrix, result["accuracy"], plot)
    return {"accuracy": result["accuracy"], "count": len(table), "majority_accuracy": result["majority_accuracy"]}


def _ratio(part, whole) -> float | None:
    return float(part) / float(whole) if whole else None


def _plot(matrix, accuracy: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(3.0, 1.2 * len(matrix) + 1.5)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix.values, cmap="Blues")
    axes.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=45, ha="right")
    axes.set_yticks(range(len(matrix.index)), matrix.index)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"accuracy {accuracy:.2f}")
    peak = matrix.values.max() or 1
    for (i, j), value in _cells(matrix.values):
        axes.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _cells(values):
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            yield (i, j), int(value)
