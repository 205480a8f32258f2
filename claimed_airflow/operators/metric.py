"""Metric operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class ConfusionMatrixMetricOperator(ClaimedOperator):
    """Compute the confusion matrix of true vs. predicted labels, with accuracy and per-class scores.

    Runs the ``metric.confusion_matrix`` component. Outputs (XCom keys): metrics, plot.

    :param predictions: Table with a true-label and a predicted-label column.
    :type predictions: str
    :param label_column: Column with the true label.
    :type label_column: str
    :param prediction_column: Column with the predicted label.
    :type prediction_column: str
    """

    component = "metric.confusion_matrix"
    component_fields = ("predictions", "label_column", "prediction_column")
    ui_color = "#f3e5f5"
    template_fields = (*component_fields, "engine", "output_root")

    def __init__(
        self,
        *,
        predictions: str,
        label_column: str = "label",
        prediction_column: str = "prediction",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.predictions = predictions
        self.label_column = label_column
        self.prediction_column = prediction_column
